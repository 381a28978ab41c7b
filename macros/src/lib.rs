//! The `#[supervised]` attribute of [taskward](https://docs.rs/taskward).
//!
//! Depend on `taskward` and write `taskward::supervised`; the attribute is
//! documented there.
//!
//! The work happens in the order data flows: `parse` reads the arguments and
//! the function, `validate` checks every rule and builds a small model,
//! `expand` writes the rewritten function (or, beside an error, a stub with
//! its signature); `entry` chains them and is the only place where errors
//! become `compile_error!`. `main_attr` is `#[taskward::main]`, which
//! checks and rewrites its function with the same steps.

#![warn(missing_docs)]

mod entry;
mod errors;
mod expand;
mod main_attr;
mod parse;
mod validate;

#[cfg(test)]
mod tests;

/// Turns an `async fn` into a supervised task. See the `taskward` crate.
#[proc_macro_attribute]
pub fn supervised(args: proc_macro::TokenStream, item: proc_macro::TokenStream) -> proc_macro::TokenStream {
    entry::supervised2(args.into(), item.into()).into()
}

/// Runs an `async fn main` as the root of a tree. See the `taskward` crate.
#[proc_macro_attribute]
pub fn main(args: proc_macro::TokenStream, item: proc_macro::TokenStream) -> proc_macro::TokenStream {
    main_attr::main2(args.into(), item.into()).into()
}
