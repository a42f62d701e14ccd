//! Code generation: the memoized function and its three helpers.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{AttrStyle, Attribute, GenericParam, Ident, ItemFn, LitStr, Type};

use crate::args::{Lifetime, Options};
use crate::sig::{Analysis, Output, Param, analyse, lifetimes_in, owned};

/// Expands `#[memoize(attr)] item`. On error, the errors are emitted next
/// to the unchanged function, so that they are the only ones reported.
pub(crate) fn memoize(attr: TokenStream, item: &TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let error = syn::Error::new(
                Span::call_site(),
                "#[memoize] applies to functions with a body: `fn` or `async fn`, free or in an \
                 inherent `impl` block",
            );
            let error = error.to_compile_error();
            return quote!(#error #item);
        }
    };
    let result = Options::parse(attr)
        .and_then(|options| analyse(&func, &options).map(|analysis| (options, analysis)))
        .and_then(|(options, analysis)| {
            if options.group && analysis.key.len() < 2 {
                return Err(darling::Error::custom(
                    "`group` groups a memo's entries by its first key parameter, to forget them \
                     together: it needs at least two key parameters (e.g. `&self` and an \
                     argument, or a user id and a page)",
                ));
            }
            Ok((options, analysis))
        });
    match result {
        Ok((options, analysis)) => Expansion::new(&options, &func, &analysis).render(),
        Err(errors) => {
            // The function as written, quiet: the errors are what matters.
            let errors = errors.write_errors();
            quote! {
                #errors
                #[allow(unused_variables, dead_code)]
                #func
            }
        }
    }
}

/// The path of the `memocache` crate as the calling crate names it.
fn crate_path() -> TokenStream {
    use proc_macro_crate::{FoundCrate, crate_name};
    match crate_name("memocache") {
        Ok(FoundCrate::Name(name)) => {
            let ident = Ident::new(&name, Span::call_site());
            quote!(::#ident)
        }
        // Inside memocache itself (its doctests and examples link it as
        // `memocache`), or when the manifest cannot be read.
        Ok(FoundCrate::Itself) | Err(_) => quote!(::memocache),
    }
}

/// Everything the generated items share.
struct Expansion<'a> {
    options: &'a Options,
    func: &'a ItemFn,
    analysis: &'a Analysis,
    krate: TokenStream,
    /// The memo's value type `V`.
    value: &'a Type,
}

impl<'a> Expansion<'a> {
    fn new(options: &'a Options, func: &'a ItemFn, analysis: &'a Analysis) -> Self {
        let value = match &analysis.output {
            Output::Plain { value } | Output::Arc { value } | Output::Result { value, .. } => value,
        };
        Self {
            options,
            func,
            analysis,
            krate: crate_path(),
            value,
        }
    }

    fn fn_name(&self) -> &Ident {
        &self.func.sig.ident
    }

    fn is_async(&self) -> bool {
        self.func.sig.asyncness.is_some()
    }

    fn render(&self) -> TokenStream {
        let memoized = self.memoized();
        let forget = self.forget();
        let forget_all = self.forget_all();
        let forget_group = self.options.group.then(|| self.forget_group());
        let memo = self.memo_fn();
        quote! {
            #memoized
            #forget
            #forget_all
            #forget_group
            #memo
        }
    }

    /// `let __memocache_cache: &Cache = &(<cache expression>);`
    fn cache_binding(&self) -> TokenStream {
        let krate = &self.krate;
        let cache_expr = &self.options.cache;
        let cache = Ident::new("__memocache_cache", Span::mixed_site());
        // Spanned at the cache expression: a wrong type is reported there.
        quote_spanned! {cache_expr.span()=>
            let #cache: &#krate::Cache = &(#cache_expr);
        }
    }

    /// Builds the memo on `__memocache_cache`: a registry lookup.
    fn build_expr(&self) -> TokenStream {
        let krate = &self.krate;
        let key = &self.analysis.key_type;
        let value = self.value;
        let name = self
            .options
            .name
            .clone()
            .unwrap_or_else(|| LitStr::new(&self.fn_name().to_string(), self.fn_name().span()));
        let fn_name = self.fn_name().to_string();
        let lifetime = match self.options.lifetime {
            Lifetime::Default => quote!(),
            Lifetime::Never => quote!(.no_timeout()),
            Lifetime::Secs(secs) => quote!(.timeout(::core::time::Duration::from_secs(#secs))),
            Lifetime::Millis(ms) => quote!(.timeout(::core::time::Duration::from_millis(#ms))),
        };
        let cache_none = self.options.cache_none.then(|| quote!(.cache_none(true)));
        let grouped = self.options.group.then(|| quote!(.grouped()));
        let unless = self
            .options
            .unless
            .as_ref()
            .map(|f| quote_spanned!(f.span()=> .unless(#f)));
        let forced_update = self
            .options
            .forced_update
            .as_ref()
            .map(|f| quote_spanned!(f.span()=> .forced_update(#f)));
        let filter = self
            .options
            .filter
            .as_ref()
            .map(|f| quote_spanned!(f.span()=> .filter(#f)));
        let source = self.options.source_check.then(|| {
            let hash = source_hash(self.func);
            quote!(.source_hash(#hash))
        });
        let cache = Ident::new("__memocache_cache", Span::mixed_site());
        let memo = Ident::new("memo", Span::mixed_site());
        let error = Ident::new("error", Span::mixed_site());
        quote! {
            match #krate::Memo::<#key, #value>::builder(#name)
                #lifetime
                #cache_none
                #grouped
                #source
                #unless
                #forced_update
                #filter
                .build(#cache)
            {
                ::core::result::Result::Ok(#memo) => #memo,
                ::core::result::Result::Err(#error) => ::core::panic!(
                    "#[memoize] on `{}`: {}; give it a unique `name = \"...\"`",
                    #fn_name,
                    #error
                ),
            }
        }
    }

    /// The memo, built on the cache: `{ let cache = …; build }`.
    fn memo_expr(&self) -> TokenStream {
        let binding = self.cache_binding();
        let build = self.build_expr();
        quote!({ #binding #build })
    }

    /// Statements binding `__memocache_memo: &Memo<K, V>` in the memoized
    /// function. A `static` keeps the memo of the first cache the function
    /// is called with, so that calls on that cache (usually the only one)
    /// skip the registry lookup; calls on other caches build theirs. Not
    /// possible when the key or value type names `Self`, which a `static`
    /// cannot.
    fn memo_binding(&self) -> TokenStream {
        let memo_var = Ident::new("__memocache_memo", Span::mixed_site());
        let binding = self.cache_binding();
        let build = self.build_expr();
        if mentions_self(self.analysis.key_type.to_token_stream())
            || mentions_self(self.value.to_token_stream())
        {
            return quote! {
                #binding
                let #memo_var = &#build;
            };
        }
        let krate = &self.krate;
        let key = &self.analysis.key_type;
        let value = self.value;
        let cache = Ident::new("__memocache_cache", Span::mixed_site());
        let built = Ident::new("__memocache_built", Span::mixed_site());
        let memo = Ident::new("memo", Span::mixed_site());
        quote! {
            #binding
            static __MEMOCACHE_MEMO: #krate::__private::OnceLock<#krate::Memo<#key, #value>> =
                #krate::__private::OnceLock::new();
            let #built;
            let #memo_var: &#krate::Memo<#key, #value> = match __MEMOCACHE_MEMO.get() {
                ::core::option::Option::Some(#memo)
                    if ::core::ptr::eq(#memo.cache().config(), #cache.config()) =>
                {
                    #memo
                }
                _ => {
                    #built = #build;
                    if __MEMOCACHE_MEMO.get().is_none() {
                        let _ = __MEMOCACHE_MEMO.set(::core::clone::Clone::clone(&#built));
                    }
                    &#built
                }
            };
        }
    }

    /// The key as the helpers and the function pass it: its parts (see
    /// `memocache::__private::Part`), one bare, a tuple of them, or `()`.
    fn query(&self, in_helper: bool) -> TokenStream {
        let elems = self.query_elems(in_helper);
        match elems.as_slice() {
            [] => quote!(()),
            [single] => single.clone(),
            _ => quote!((#(#elems),*)),
        }
    }

    /// The key's group as the helpers pass it (the first key parameter's
    /// part), on a grouped memo.
    fn group_query(&self, in_helper: bool) -> Option<TokenStream> {
        if !self.options.group {
            return None;
        }
        self.query_elems(in_helper).into_iter().next()
    }

    /// Each key parameter as a part of the key: borrowed, and checked
    /// against the key type's part wherever Rust can relate the two types.
    fn query_elems(&self, in_helper: bool) -> Vec<TokenStream> {
        let krate = &self.krate;
        let part = quote!(#krate::__private::Part);
        self.analysis
            .key
            .iter()
            .map(|&i| match &self.analysis.params[i] {
                Param::Named { name, ty } => {
                    let owned_ty = owned(ty);
                    let span = ty.span();
                    match part_kind(ty) {
                        PartKind::Owned(inner) => {
                            quote_spanned!(span=> #part::<#inner, #inner>::of(&#name))
                        }
                        PartKind::Str => quote_spanned!(span=> #part::str(&#name)),
                        PartKind::Slice(elem) => {
                            quote_spanned!(span=> #part::<::std::vec::Vec<#elem>, [#elem]>::slice(&#name))
                        }
                        PartKind::Nested => {
                            quote_spanned!(span=> #part::<#owned_ty, _>::unchecked(&#name))
                        }
                    }
                }
                Param::Receiver(receiver) => {
                    let this = receiver.self_token;
                    let reference = if in_helper {
                        // The helpers take `&self`.
                        quote!(#this)
                    } else if receiver.colon_token.is_none() {
                        if receiver.reference.is_some() {
                            quote!(#this)
                        } else {
                            quote!(&#this)
                        }
                    } else {
                        match &*receiver.ty {
                            Type::Reference(_) => quote!(#this),
                            Type::Path(p) if p.qself.is_none() && p.path.is_ident("Self") => {
                                quote!(&#this)
                            }
                            // `Box<Self>`, `Arc<Self>`, `Pin<&mut Self>`…
                            _ => quote!(&*#this),
                        }
                    };
                    quote!(#part::<Self, Self>::of(#reference))
                }
                Param::Pattern { .. } => unreachable!("rejected by the analysis"),
            })
            .collect()
    }

    /// The parameters of a helper: `&self` if needed, the parameters the
    /// cache expression uses, then (for `_forget`) the key parameters.
    fn helper_params(&self, with_key: bool) -> (Vec<TokenStream>, Vec<&Type>) {
        let key: &[usize] = if with_key { &self.analysis.key } else { &[] };
        self.helper_params_with(key)
    }

    /// The parameters of a helper that takes the key parameters `key`.
    fn helper_params_with(&self, key: &[usize]) -> (Vec<TokenStream>, Vec<&Type>) {
        let analysis = self.analysis;
        let uses_self = |indices: &[usize]| {
            indices
                .iter()
                .any(|&i| matches!(analysis.params[i], Param::Receiver(_)))
        };
        let needs_self = uses_self(&analysis.cache_params) || uses_self(key);
        let mut params = Vec::new();
        let mut types = Vec::new();
        if needs_self {
            if let Some(receiver) = analysis.receiver() {
                let this = receiver.self_token;
                params.push(quote!(&#this));
            }
        }
        for &i in analysis.cache_params.iter().chain(key) {
            if let Param::Named { name, ty } = &analysis.params[i] {
                params.push(quote!(#name: #ty));
                types.push(ty);
            }
        }
        (params, types)
    }

    /// `<'a, …>`: the function's lifetime parameters that `types` use.
    fn helper_generics(&self, types: &[&Type]) -> TokenStream {
        let used = lifetimes_in(types.iter().copied());
        let lifetimes: Vec<&syn::Lifetime> = self
            .func
            .sig
            .generics
            .params
            .iter()
            .filter_map(|p| match p {
                GenericParam::Lifetime(l) if used.contains(&l.lifetime.ident.to_string()) => {
                    Some(&l.lifetime)
                }
                _ => None,
            })
            .collect();
        if lifetimes.is_empty() {
            quote!()
        } else {
            quote!(<#(#lifetimes),*>)
        }
    }

    /// Attributes the helpers inherit: `#[cfg(...)]`.
    fn inherited_attrs(&self) -> Vec<&Attribute> {
        self.func
            .attrs
            .iter()
            .filter(|a| matches!(a.style, AttrStyle::Outer) && a.path().is_ident("cfg"))
            .collect()
    }

    /// A helper: `#vis [async] fn name<'a>(params) -> Reach { memo.action }`,
    /// the future `action` awaited, or blocked on in a plain function.
    fn helper(&self, name: &Ident, doc: &str, with_key: bool, action: &TokenStream) -> TokenStream {
        let key: &[usize] = if with_key { &self.analysis.key } else { &[] };
        self.helper_taking(name, doc, key, action)
    }

    /// [`Expansion::helper`] taking the key parameters `key`.
    fn helper_taking(
        &self,
        name: &Ident,
        doc: &str,
        key: &[usize],
        action: &TokenStream,
    ) -> TokenStream {
        let vis = &self.func.vis;
        let cfgs = self.inherited_attrs();
        let (params, types) = self.helper_params_with(key);
        let generics = self.helper_generics(&types);
        let memo_var = Ident::new("__memocache_memo", Span::mixed_site());
        let memo = self.memo_expr();
        let body = if self.is_async() {
            quote! {
                let #memo_var = #memo;
                #memo_var.#action.await
            }
        } else {
            let block_on = block_on_fn();
            quote! {
                #block_on
                let #memo_var = #memo;
                __memocache_block_on(#memo_var.#action)
            }
        };
        let asyncness = self.is_async().then(|| quote!(async));
        let krate = &self.krate;
        quote! {
            #(#cfgs)*
            #[doc = #doc]
            #[allow(dead_code, clippy::needless_pass_by_value)]
            #vis #asyncness fn #name #generics(#(#params),*) -> #krate::Reach {
                #body
            }
        }
    }

    fn forget(&self) -> TokenStream {
        let fn_name = self.fn_name();
        let name = format_ident!("{}_forget", fn_name);
        let doc = format!(
            "Forgets the result `{fn_name}` memoized for these arguments: Flask-Caching's \
             `delete_memoized({fn_name}, ...)`. A call of `{fn_name}` with them that is \
             running does not store its result afterwards. Says whether every process was \
             reached (`memocache::Reach`).\n\n\
             Generated by `#[memoize]`.\n\n\
             # Panics\n\
             If another memo of the same name but other types is built on the cache.",
        );
        let query = self.query(true);
        self.helper(&name, &doc, true, &quote!(__forget_by(#query)))
    }

    /// `<fn>_forget_group`, on a grouped memo: forgets every result whose
    /// first key parameter is the one given.
    fn forget_group(&self) -> TokenStream {
        let fn_name = self.fn_name();
        let name = format_ident!("{}_forget_group", fn_name);
        let doc = format!(
            "Forgets every result `{fn_name}` memoized whose first key parameter is this \
             one, in O(1) (Flask-Caching's `delete_memoized(obj.method)` for one \
             instance): `memocache::Memo::forget_group`. Says whether every process was \
             reached (`memocache::Reach`).\n\n\
             Generated by `#[memoize(group)]`.\n\n\
             # Panics\n\
             If another memo of the same name but other types is built on the cache.",
        );
        let first = &self.analysis.key[..1];
        let group = self.group_query(true).unwrap_or_else(|| quote!(()));
        self.helper_taking(&name, &doc, first, &quote!(__forget_group_by(#group)))
    }

    fn forget_all(&self) -> TokenStream {
        let fn_name = self.fn_name();
        let name = format_ident!("{}_forget_all", fn_name);
        let doc = format!(
            "Forgets every result `{fn_name}` memoized in the cache: Flask-Caching's \
             `delete_memoized({fn_name})`.\n\n\
             Generated by `#[memoize]`.\n\n\
             # Panics\n\
             If another memo of the same name but other types is built on the cache.",
        );
        self.helper(&name, &doc, false, &quote!(forget_all()))
    }

    fn memo_fn(&self) -> TokenStream {
        let fn_name = self.fn_name();
        let name = format_ident!("{}_memo", fn_name);
        let doc = format!(
            "The typed memo behind `{fn_name}`, for code that wants the fast path: build it \
             once, keep it, and call its methods (`get_or_load`, `forget`, `stats`…) directly. \
             It shares its entries with `{fn_name}`.\n\n\
             Generated by `#[memoize]`.\n\n\
             # Panics\n\
             If another memo of the same name but other types is built on the cache.",
        );
        let vis = &self.func.vis;
        let cfgs = self.inherited_attrs();
        let (params, types) = self.helper_params(false);
        let generics = self.helper_generics(&types);
        let krate = &self.krate;
        let key = &self.analysis.key_type;
        let value = self.value;
        let memo = self.memo_expr();
        quote! {
            #(#cfgs)*
            #[doc = #doc]
            #[allow(dead_code, clippy::needless_pass_by_value)]
            #vis fn #name #generics(#(#params),*) -> #krate::Memo<#key, #value> {
                #memo
            }
        }
    }

    /// The function itself, its body run only on a miss.
    fn memoized(&self) -> TokenStream {
        let ItemFn {
            attrs,
            vis,
            sig,
            block,
        } = self.func;
        let krate = &self.krate;
        let outer = attrs.iter().filter(|a| matches!(a.style, AttrStyle::Outer));
        let inner = attrs
            .iter()
            .filter(|a| !matches!(a.style, AttrStyle::Outer));
        let ret = &self.analysis.return_type;
        let ret_span = ret.span();
        let value = self.value;
        let memo_var = Ident::new("__memocache_memo", Span::mixed_site());
        let result = Ident::new("__memocache_result", Span::mixed_site());
        let v = Ident::new("value", Span::mixed_site());
        let e = Ident::new("error", Span::mixed_site());
        let shared = Ident::new("shared", Span::mixed_site());
        let arc = quote!(#krate::__private::Arc);
        let ok = quote!(::core::result::Result::Ok);
        let err = quote!(::core::result::Result::Err);
        // Fixes the body's type, so that `?` and `return` in it infer.
        let body = quote!(__memocache_output::<#ret, _>(async #block));
        let clone_value = quote_spanned!(ret_span=> <#value as ::core::clone::Clone>::clone(&*#v));
        let clone_error = quote_spanned!(ret_span=> ::core::clone::Clone::clone(&*#e));
        let (load, convert) = match &self.analysis.output {
            Output::Plain { .. } => (
                quote! {
                    || async {
                        #ok::<#value, ::core::convert::Infallible>(#body.await)
                    }
                },
                quote! {
                    match #result {
                        #ok(#v) => #clone_value,
                        #err(#e) => match *#e {},
                    }
                },
            ),
            // A body returning an `Arc` shared elsewhere cannot hand its
            // value to the memo; that result is returned, not cached.
            Output::Arc { .. } => (
                quote! {
                    || async { #arc::try_unwrap(#body.await) }
                },
                quote! {
                    match #result {
                        #ok(#v) => #v,
                        #err(#shared) => #arc::clone(&*#shared),
                    }
                },
            ),
            Output::Result { arc: false, .. } => (
                quote!(|| #body),
                quote! {
                    match #result {
                        #ok(#v) => #ok(#clone_value),
                        #err(#e) => #err(#arc::try_unwrap(#e).unwrap_or_else(|#e| #clone_error)),
                    }
                },
            ),
            Output::Result { arc: true, .. } => (
                quote! {
                    || async {
                        match #body.await {
                            #ok(#shared) => #arc::try_unwrap(#shared).map_err(#ok),
                            #err(#e) => #err(#err(#e)),
                        }
                    }
                },
                quote! {
                    match #result {
                        #ok(#v) => #ok(#v),
                        #err(#e) => match #arc::try_unwrap(#e) {
                            #ok(#ok(#shared)) => #ok(#shared),
                            #ok(#err(#e)) => #err(#e),
                            #err(#e) => match &*#e {
                                #ok(#shared) => #ok(#arc::clone(#shared)),
                                #err(#e) => #err(#clone_error),
                            },
                        },
                    }
                },
            ),
        };
        let memo_binding = self.memo_binding();
        let query = self.query(false);
        let checks = self.type_checks();
        let fetch = quote!(#memo_var.__get_or_try_load_by(#query, #load));
        let (block_on, fetch) = if self.is_async() {
            (None, quote!(#fetch.await))
        } else {
            (Some(block_on_fn()), quote!(__memocache_block_on(#fetch)))
        };
        quote! {
            #(#outer)*
            #vis #sig {
                #(#inner)*
                fn __memocache_output<R, F: ::core::future::Future<Output = R>>(future: F) -> F {
                    future
                }
                #block_on
                #checks
                #memo_binding
                let #result = #fetch;
                #convert
            }
        }
    }
}

impl Expansion<'_> {
    /// No-op statements that fail to compile when a key parameter is not
    /// `Serialize` or the value not a `CacheValue`, reported at the
    /// parameter or return type at fault rather than at the attribute.
    fn type_checks(&self) -> TokenStream {
        let krate = &self.krate;
        let keys = self
            .analysis
            .key
            .iter()
            .map(|&i| match &self.analysis.params[i] {
                Param::Named { ty, .. } => {
                    let owned = owned(ty);
                    quote_spanned!(ty.span()=> let _ = #krate::__private::KeyHash::of::<#owned>;)
                }
                Param::Receiver(receiver) => {
                    quote_spanned!(receiver.self_token.span=> let _ = #krate::__private::KeyHash::of::<Self>;)
                }
                Param::Pattern { .. } => quote!(),
            });
        let value = self.value;
        let value_check = quote_spanned! {value.span()=>
            fn __memocache_cache_value<V: #krate::CacheValue>() {}
            let _ = __memocache_cache_value::<#value>;
        };
        quote! {
            #(#keys)*
            #value_check
        }
    }
}

/// A hash of the function's signature and body as tokens (FNV-1a, 64
/// bits, never 0): what `source_check` stamps its values with. Tokens, so
/// whitespace, comments and doc comments do not count; any other change to
/// the function's own text does.
fn source_hash(func: &ItemFn) -> u64 {
    let sig = &func.sig;
    let block = &func.block;
    let text = quote!(#sig #block).to_string();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    hash.max(1)
}

/// How a key parameter of type `ty` becomes a part of the key.
enum PartKind<'a> {
    /// A type without borrows or lifetimes, behind any number of `&`: a
    /// reference to its owned type (checked).
    Owned(&'a Type),
    /// `&str` (behind any number of `&`): stands for a `String` (checked).
    Str,
    /// `&[T]` of an owned `T`: stands for a `Vec<T>` (checked).
    Slice(&'a Type),
    /// Borrows nested inside (`Option<&str>`, `Cow<'a, str>`): mapped to
    /// the owned type by syntax, unchecked.
    Nested,
}

fn part_kind(ty: &Type) -> PartKind<'_> {
    let mut inner = ty;
    let mut behind_reference = false;
    loop {
        match inner {
            Type::Reference(reference) => {
                behind_reference = true;
                inner = &reference.elem;
            }
            Type::Paren(paren) => inner = &paren.elem,
            Type::Group(group) => inner = &group.elem,
            _ => break,
        }
    }
    if borrow_free(inner) {
        return PartKind::Owned(inner);
    }
    match inner {
        Type::Path(p) if behind_reference && p.qself.is_none() && p.path.is_ident("str") => {
            PartKind::Str
        }
        Type::Slice(slice) if behind_reference && borrow_free(&slice.elem) => {
            PartKind::Slice(&slice.elem)
        }
        _ => PartKind::Nested,
    }
}

/// True if `ty` is sized, owned and names no lifetime: then it is its own
/// owned type.
fn borrow_free(ty: &Type) -> bool {
    fn free(tokens: TokenStream) -> bool {
        tokens.into_iter().all(|token| match token {
            TokenTree::Punct(punct) => punct.as_char() != '&' && punct.as_char() != '\'',
            TokenTree::Ident(ident) => ident != "str" && ident != "dyn" && ident != "impl",
            TokenTree::Group(group) => free(group.stream()),
            TokenTree::Literal(_) => true,
        })
    }
    !matches!(ty, Type::Slice(_)) && free(ty.to_token_stream())
}

/// True if `tokens` name `Self`.
fn mentions_self(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(ident) => ident == "Self",
        TokenTree::Group(group) => mentions_self(group.stream()),
        _ => false,
    })
}

/// A minimal `block_on` (park the thread until woken), for plain
/// functions: memocache does not re-export one yet.
fn block_on_fn() -> TokenStream {
    quote! {
        fn __memocache_block_on<F: ::core::future::Future>(future: F) -> F::Output {
            struct ThreadWaker(::std::thread::Thread);
            impl ::std::task::Wake for ThreadWaker {
                fn wake(self: ::std::sync::Arc<Self>) {
                    self.0.unpark();
                }
                fn wake_by_ref(self: &::std::sync::Arc<Self>) {
                    self.0.unpark();
                }
            }
            let waker = ::std::task::Waker::from(::std::sync::Arc::new(ThreadWaker(
                ::std::thread::current(),
            )));
            let mut context = ::std::task::Context::from_waker(&waker);
            let mut future = ::core::pin::pin!(future);
            loop {
                let poll = ::core::future::Future::poll(future.as_mut(), &mut context);
                if let ::core::task::Poll::Ready(output) = poll {
                    return output;
                }
                ::std::thread::park();
            }
        }
    }
}
