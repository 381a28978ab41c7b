use taskward::supervised;

#[supervised]
trait Service {
    fn serve(self) -> Result<(), std::io::Error>;
}

fn main() {}
