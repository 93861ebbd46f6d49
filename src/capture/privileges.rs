//! `-Z USER`: once the capture is open, run as an ordinary user without capabilities, as
//! tcpdump does. The packet socket stays open (it was created with the privileges); nothing
//! done later (reading packets, writing -w files, answering metrics) needs them.

use std::ffi::{CStr, CString};
use std::io;

/// A user from the password database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
}

/// Look `name` up (getpwnam_r).
pub fn lookup_user(name: &str) -> Result<User, String> {
    let cname = CString::new(name).map_err(|_| format!("-Z {name:?}: not a user name"))?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: zeroed passwd is a valid out-parameter; buf outlives the call and its result.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: valid pointers and the buffer's true length.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 {
        let e = io::Error::from_raw_os_error(rc);
        return Err(format!("-Z {name}: cannot look the user up: {e}"));
    }
    if found.is_null() {
        return Err(format!("-Z {name}: no such user"));
    }
    // SAFETY: getpwnam_r filled pw_name with a NUL-terminated string inside buf.
    let pw_name = unsafe { CStr::from_ptr(pwd.pw_name) };
    Ok(User {
        name: pw_name.to_string_lossy().into_owned(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    })
}

/// Become `user` (its groups, its gid, its uid) and give up every capability. Run as root or
/// with CAP_SETUID and CAP_SETGID, or already as `user` (then only the capabilities go).
pub fn drop_to(user: &User) -> Result<(), String> {
    let fail = |what: &str, e: io::Error| {
        format!(
            "-Z {}: {what}: {e} (changing user needs root or CAP_SETUID and CAP_SETGID)",
            user.name
        )
    };
    // SAFETY: plain system calls on integers and a NUL-terminated name.
    unsafe {
        if libc::getuid() != user.uid || libc::geteuid() != user.uid {
            let cname = CString::new(user.name.as_str()).map_err(|e| e.to_string())?;
            if libc::initgroups(cname.as_ptr(), user.gid) != 0 {
                return Err(fail("initgroups", io::Error::last_os_error()));
            }
            if libc::setresgid(user.gid, user.gid, user.gid) != 0 {
                return Err(fail("setgid", io::Error::last_os_error()));
            }
            if libc::setresuid(user.uid, user.uid, user.uid) != 0 {
                return Err(fail("setuid", io::Error::last_os_error()));
            }
        }
    }
    clear_capabilities().map_err(|e| format!("-Z {}: cannot drop capabilities: {e}", user.name))
}

/// Empty the ambient, inheritable, effective and permitted sets (the bounding set needs
/// CAP_SETPCAP to shrink, and with none permitted nothing can be regained from it but by
/// executing a file with capabilities, which tcprace does not).
fn clear_capabilities() -> Result<(), caps::errors::CapsError> {
    use caps::CapSet;
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    caps::clear(None, CapSet::Effective)?;
    caps::clear(None, CapSet::Permitted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_looked_up_by_name() {
        let root = lookup_user("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        let e = lookup_user("no-such-user-tcprace").unwrap_err();
        assert_eq!(e, "-Z no-such-user-tcprace: no such user");
        assert!(lookup_user("a\0b").unwrap_err().contains("not a user name"));
    }
}
