//! Compile-time behaviour of `#[supervised]`: every misuse under
//! `tests/ui/fail/` is one compile error whose text is in the `.stderr` file
//! beside it, and every case under `tests/ui/pass/` compiles.
//!
//! Compiler messages change between releases, so this runs on stable only.
//! After a deliberate change of a message, refresh the expected output with
//! `TRYBUILD=overwrite cargo test -p taskward-tests-build --test ui` and
//! review the diff.

#[rustversion::attr(not(stable), ignore = "compiler messages are checked on stable only")]
#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
