use taskward::supervised;

#[supervised]
async fn worker(id: u32) -> u32 {
    id * 2
}

fn main() {}
