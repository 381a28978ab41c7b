//! The order in which `report` runs the variants of a case in each round.
//!
//! A variant's time depends on the variant that ran just before it, on the
//! heap and in the caches that one left: the held `#[supervised]` fn read
//! 0.95x to 1.00x of `JoinSet` in rounds ordered `JoinSet`, `TaskTracker`,
//! fn, and 0.90x to 0.96x in rounds ordered raw, `JoinSet`, fn (three runs
//! each, 41 rounds, benches/PROFILE-NOTES.md, session 15). A plain
//! rotation of the variants keeps every one of them after the same
//! neighbour in every round, so that effect stayed in the ratios,
//! whichever way it went. The order of a
//! Williams design spreads it evenly: over `n` rounds (`2n` for an odd
//! number of variants), every variant runs right after every other one
//! equally often, and in every position equally often.

/// The order of `n` variants in `round`: a row of a Williams design.
///
/// Its first row is `0, n-1, 1, n-2, 2, ...`, whose steps from one entry to
/// the next are `-1, +2, -3, +4, ...` (mod `n`), each step once: round `r`
/// adds `r` to every entry (mod `n`), so each ordered pair of neighbours
/// comes once in `n` rounds. With an odd `n` two steps are the same
/// (`+k` and `-(n - k)`), and the rounds from `n` to `2n - 1` run the rows
/// reversed, which brings each pair in the other way.
pub(crate) fn order(n: usize, round: usize) -> Vec<usize> {
    let mut first = Vec::with_capacity(n);
    let (mut low, mut high) = (0, n);
    for at in 0..n {
        if at.is_multiple_of(2) {
            first.push(low);
            low += 1;
        } else {
            high -= 1;
            first.push(high);
        }
    }
    if !n.is_multiple_of(2) && !(round / n).is_multiple_of(2) {
        first.reverse();
    }
    first.into_iter().map(|variant| (variant + round) % n).collect()
}
