use taskward::supervised;

struct Worker;

#[supervised]
impl Worker {
    async fn run(self) -> Result<(), std::io::Error> {
        Ok(())
    }
}

fn main() {
    let _future = Worker.run();
}
