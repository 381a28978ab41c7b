// Regression: the stub emitted beside the error for a generic function had a
// return type that was not well-formed (`T` is not `Send`), a second error.
use taskward::supervised;

#[supervised]
async fn first<T: Clone>(items: &[T]) -> Result<Option<T>, std::io::Error> {
    Ok(items.first().cloned())
}

fn main() {
    let _task = first(&[1, 2, 3]);
}
