// Attributes, doc comments, visibility and `#[must_use]` pass through; the
// generated function is `#[must_use]` unless the user says otherwise.
#![deny(warnings, missing_docs)]
//! A crate whose public supervised function is documented.

use taskward::supervised;

/// Doubles `value`, as a supervised task.
#[supervised]
#[inline]
#[deprecated = "use `triple`"]
pub async fn double(value: u32) -> Result<u32, std::io::Error> {
    Ok(value * 2)
}

/// Keeps its own `#[must_use]` message.
#[must_use = "spawn it"]
#[supervised]
pub async fn own_message() {}

#[supervised]
#[cfg(any())]
async fn compiled_out(value: NoSuchType) {}

#[supervised]
#[allow(clippy::needless_return)]
pub(crate) async fn early(flag: bool, #[allow(unused_variables)] ignored: u8) -> Result<u8, std::io::Error> {
    if flag {
        return Ok(1);
    }
    return Ok(0);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    #[allow(deprecated)]
    let task = double(2);
    assert_eq!(taskward::run(task).await.unwrap(), 4);
    taskward::run(own_message()).await.unwrap();
    assert_eq!(taskward::run(early(true, 0)).await.unwrap(), 1);
}
