use std::sync::Arc;

use taskward::supervised;

struct Server {
    port: u16,
}

impl Server {
    #[supervised]
    async fn serve(self: &Arc<Self>) -> Result<u16, std::io::Error> {
        Ok(self.port)
    }
}

fn main() {
    let server = Arc::new(Server { port: 8080 });
    let _task = server.serve();
}
