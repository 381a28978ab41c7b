// On stable, rustc itself rejects an attribute on an expression first (the
// two E0658 errors); the third error is the macro's, which says what to
// write instead.
use taskward::supervised;

fn main() {
    let worker = #[supervised] async move |id: u32| -> Result<u32, std::io::Error> { Ok(id) };
    let _ = worker;
}
