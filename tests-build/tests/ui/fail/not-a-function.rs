use taskward::supervised;

#[supervised]
struct Worker {
    id: u32,
}

fn main() {
    let worker = Worker { id: 1 };
    let _ = worker.id;
}
