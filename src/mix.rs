//! A 64-bit mix: SplitMix64's finaliser, and its whole step (the golden gamma added first).
//! Bijections whose every output bit depends on every input bit: ranks of ids for sampling,
//! and the hash that splits connections between threads.

/// `x`'s bits spread over the whole word (SplitMix64's finaliser; a bijection).
pub(crate) fn finalize(x: u64) -> u64 {
    let mut z = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64's step on `x`: the golden gamma added, then [`finalize`] (a bijection: distinct
/// inputs, distinct outputs).
pub(crate) fn splitmix64(x: u64) -> u64 {
    finalize(x.wrapping_add(0x9E37_79B9_7F4A_7C15))
}
