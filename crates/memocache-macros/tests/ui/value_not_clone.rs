use memocache::{Cache, memoize};

#[derive(serde::Serialize, serde::Deserialize)]
struct Page {
    html: String,
}

// Return `Arc<Page>` to share the cached value without cloning it.
#[memoize(cache = cache)]
async fn render(cache: &Cache, path: &str) -> Page {
    Page { html: path.to_owned() }
}

fn main() {}
