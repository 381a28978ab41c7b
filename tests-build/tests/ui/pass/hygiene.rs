// Generated code names only `::taskward::__private::…` and `::core::…`: the
// user's crate may shadow `Result`, `Option`, `Box`, `Send`, `Some`, `None`,
// `Ok` and `core`, and a module without the prelude works.
#![deny(warnings)]
#![allow(dead_code, non_camel_case_types)]

struct Option;
struct Box;
struct Send;
struct Some;
struct None;
struct Ok;
struct Pin;
struct Future;
mod core {}
mod std {}
mod taskward_private {}

type Result<T> = ::std::result::Result<T, ::std::io::Error>;

#[::taskward::supervised]
async fn shadowed(scope: &::taskward::Scope, value: u32) -> Result<u32> {
    let _ = scope;
    ::std::result::Result::Ok(value)
}

#[::taskward::supervised]
async fn shadowed_unit() {}

mod bare {
    #![no_implicit_prelude]

    #[::taskward::supervised]
    pub(crate) async fn no_prelude(
        token: ::taskward::CancellationToken,
        value: u32,
    ) -> ::std::result::Result<u32, ::std::io::Error> {
        let _ = token;
        ::std::result::Result::Ok(value)
    }
}

#[::tokio::main(flavor = "current_thread")]
async fn main() {
    let value = ::taskward::run(shadowed(1)).await.unwrap();
    ::std::assert_eq!(value, 1);
    ::taskward::run(shadowed_unit()).await.unwrap();
    ::std::assert_eq!(::taskward::run(bare::no_prelude(2)).await.unwrap(), 2);
}
