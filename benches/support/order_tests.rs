//! The tests of `order.rs`, the order of the variants in `report`'s rounds
//! (a test target of its own: the bench targets have no test harness).

#[path = "order.rs"]
mod order;

use order::order;

/// The rounds after which the design has come full circle.
fn cycle(n: usize) -> usize {
    if n.is_multiple_of(2) { n } else { 2 * n }
}

#[test]
fn every_round_runs_every_variant_once() {
    for n in 1..=10 {
        for round in 0..3 * cycle(n) {
            let mut row = order(n, round);
            row.sort_unstable();
            assert_eq!(row, (0..n).collect::<Vec<_>>(), "n = {n}, round {round}");
        }
    }
}

#[test]
fn every_variant_follows_every_other_equally_often() {
    for n in 2..=10 {
        let mut after = vec![vec![0; n]; n];
        for round in 0..cycle(n) {
            for pair in order(n, round).windows(2) {
                after[pair[0]][pair[1]] += 1;
            }
        }
        let each = cycle(n) / n;
        for (a, row) in after.iter().enumerate() {
            for (b, &count) in row.iter().enumerate() {
                let expected = if a == b { 0 } else { each };
                assert_eq!(count, expected, "n = {n}: {b} right after {a}");
            }
        }
    }
}

#[test]
fn every_variant_takes_every_position_equally_often() {
    for n in 1..=10 {
        let mut at = vec![vec![0; n]; n];
        for round in 0..cycle(n) {
            for (position, &variant) in order(n, round).iter().enumerate() {
                at[variant][position] += 1;
            }
        }
        let each = cycle(n) / n;
        assert!(at.iter().flatten().all(|&count| count == each), "n = {n}: {at:?}");
    }
}
