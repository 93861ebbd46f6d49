//! Who else could explain a candidate retry: other failures that could claim it, the chain of
//! a retry that failed again, and the chance that a fresh request came by.

use super::{
    Decided, Group, HISTORY_S, MAX_CHAIN, MAX_SCAN, Pending, RATE_SPAN_FACTOR, RetryMatcher, Slot,
};

impl RetryMatcher {
    /// Could another failure, not settled as retried by another request, claim `r`? (Yes
    /// when too many failures of the group compete to tell.)
    pub(super) fn contested(&self, id: u64, r: &Slot) -> bool {
        let p = &self.failures[&id];
        let Some(g) = self.groups.get(&p.group) else {
            return false;
        };
        let others = g.failures.iter().filter(|&&q| q != id);
        for (n, q) in others.filter_map(|q| self.failures.get(q)).enumerate() {
            self.looked(1);
            if n >= MAX_SCAN {
                return true;
            }
            if !matches!(q.decided, Some(Decided::Retried(_)))
                && r.at.ts >= q.known_at
                && r.at.ts <= q.known_at.add_secs(self.window)
                && r.repeats(q)
            {
                return true;
            }
        }
        false
    }

    /// The attempts that `p`'s request repeats: the failures retried by it, by those, and so
    /// on (a proxy's retry that failed again and was retried once more).
    fn earlier_attempts(&self, p: &Pending, g: &Group) -> Vec<(u64, u32)> {
        let mut chain = Vec::new();
        let mut cur = (p.conn, p.at.ordinal);
        while chain.len() < MAX_CHAIN {
            let retried_cur = |q: &&Pending| {
                matches!(q.decided, Some(Decided::Retried(m))
                    if (m.conn, m.at.ordinal) == cur)
            };
            let failures = g.failures.iter().take(MAX_SCAN);
            let Some(q) = failures
                .filter_map(|id| self.failures.get(id))
                .find(retried_cur)
            else {
                break;
            };
            self.looked(1);
            cur = (q.conn, q.at.ordinal);
            chain.push((q.conn, q.index));
        }
        chain
    }

    /// Is `a` explained as the retry of a failure of the group `g` that came with or after
    /// the candidate `r` (the candidate failed too, and `a` repeats it)? Such a request is not
    /// a fresh one and says nothing of the group's rate.
    fn retries_a_later_failure(&self, g: &Group, r: &Slot, a: &Slot) -> bool {
        let failures = g.failures.iter().take(MAX_SCAN);
        failures.filter_map(|id| self.failures.get(id)).any(|q| {
            self.looked(1);
            q.at.ordinal >= r.at.ordinal
                && a.at.ts >= q.known_at
                && a.at.ts <= q.known_at.add_secs(self.window)
                && a.repeats(q)
        })
    }

    /// The chance that a fresh request of the same group came within `reaction` s after the
    /// failure, from the rate of the same request around it: the other attempts of the group
    /// within `RATE_SPAN_FACTOR` times the reaction before and after (bounded by the history
    /// kept and the window); 1 when there are any (or too many to look through).
    pub(super) fn chance(&self, p: &Pending, g: &Group, r: &Slot, reaction: f64) -> f64 {
        let span = (reaction * RATE_SPAN_FACTOR).max(1e-4);
        let seen = self
            .first_seen
            .map_or(0.0, |s| p.known_at.secs_since(s).max(0.0));
        let before = span.min(HISTORY_S).min(seen);
        let after = span.min(self.window);
        let lo = p.known_at.add_secs(-before);
        let hi = p.known_at.add_secs(reaction + after);
        let mine = |s: &Slot| {
            (s.conn, s.index) == (p.conn, p.index) || (s.conn, s.index) == (r.conn, r.index)
        };
        let chain = self.earlier_attempts(p, g);
        let mut looked = 0;
        for s in g.slots.range(g.at_or_after(lo)..) {
            self.looked(1);
            if s.at.ts > hi {
                break;
            }
            looked += 1;
            if looked > MAX_SCAN {
                return 1.0;
            }
            if s.at.ts >= lo
                && !mine(s)
                && !chain.contains(&(s.conn, s.index))
                && !self.retries_a_later_failure(g, r, s)
            {
                return 1.0;
            }
        }
        reaction / (before + after + reaction).max(1e-9)
    }
}
