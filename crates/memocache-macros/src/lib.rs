//! The `#[memoize]` attribute macro for memocache (placeholder until the
//! real expansion lands).
use proc_macro::TokenStream;

/// Memoizes a function.
#[proc_macro_attribute]
pub fn memoize(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
