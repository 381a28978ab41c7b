use taskward::supervised;

struct Counter {
    count: u64,
}

impl Counter {
    #[supervised]
    async fn bump(&mut self) -> Result<u64, std::io::Error> {
        self.count += 1;
        Ok(self.count)
    }
}

fn main() {
    let mut counter = Counter { count: 0 };
    let _task = counter.bump();
}
