//! What the attribute needs to know about the function it decorates: which
//! parameters make the key, which the cache expression uses, and what the
//! function returns.

use std::collections::HashSet;

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{
    Expr, FnArg, GenericArgument, GenericParam, Ident, ItemFn, Lifetime, Pat, PathArguments,
    Receiver, ReturnType, Type, TypePath, parse_quote, parse_quote_spanned,
};

use crate::args::Options;

/// One parameter of the decorated function.
pub(crate) enum Param {
    /// `self`, `&self`, `&mut self`, `self: Box<Self>`, …
    Receiver(Receiver),
    /// `name: Type` (or `mut name: Type`).
    Named { name: Ident, ty: Type },
    /// A pattern other than an identifier, as in `(a, b): (i32, i32)`.
    Pattern { pat: Pat },
}

impl Param {
    fn name(&self) -> Option<String> {
        match self {
            Param::Receiver(_) => Some("self".to_owned()),
            Param::Named { name, .. } => Some(name.to_string()),
            Param::Pattern { .. } => None,
        }
    }
}

/// What the function returns, which decides how a memo result becomes the
/// function's result.
pub(crate) enum Output {
    /// `-> V`: the value is cloned out of the memo's `Arc<V>`.
    Plain { value: Type },
    /// `-> Arc<T>`: the memo's `Arc<T>` is returned as is.
    Arc { value: Type },
    /// `-> Result<V, E>` (or `Result<Arc<V>, E>` when `arc`): errors are
    /// never cached.
    Result { value: Type, arc: bool },
}

/// The analysed function.
pub(crate) struct Analysis {
    pub(crate) params: Vec<Param>,
    /// Indices into `params` of the parameters the key is made of.
    pub(crate) key: Vec<usize>,
    /// Indices into `params` of the parameters the cache expression uses.
    pub(crate) cache_params: Vec<usize>,
    pub(crate) output: Output,
    /// The function's return type, `()` if it has none.
    pub(crate) return_type: Type,
    pub(crate) key_type: Type,
}

impl Analysis {
    /// The function's receiver, if any.
    pub(crate) fn receiver(&self) -> Option<&Receiver> {
        self.params.iter().find_map(|p| match p {
            Param::Receiver(r) => Some(r),
            _ => None,
        })
    }
}

/// Checks `func` against `options`; every problem is reported, each at
/// its own token.
pub(crate) fn analyse(func: &ItemFn, options: &Options) -> darling::Result<Analysis> {
    let mut errors = darling::Error::accumulator();
    let sig = &func.sig;

    if let Some(constness) = &sig.constness {
        errors.push(spanned(constness, "#[memoize] cannot memoize a `const fn`"));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(spanned(
            variadic,
            "#[memoize] cannot memoize a variadic function",
        ));
    }
    for param in &sig.generics.params {
        match param {
            GenericParam::Type(t) => errors.push(spanned(
                t,
                "#[memoize] cannot memoize a generic function: a memo has one key type and one \
                 value type; write a concrete function for each instantiation",
            )),
            GenericParam::Const(c) => errors.push(spanned(
                c,
                "#[memoize] cannot memoize a function with const generics: a memo has one key \
                 type and one value type",
            )),
            GenericParam::Lifetime(_) => {}
        }
    }

    let params: Vec<Param> = sig
        .inputs
        .iter()
        .map(|input| match input {
            FnArg::Receiver(r) => Param::Receiver(r.clone()),
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => Param::Named {
                    name: pi.ident.clone(),
                    ty: (*typed.ty).clone(),
                },
                pat => Param::Pattern { pat: pat.clone() },
            },
        })
        .collect();
    let names: Vec<Option<String>> = params.iter().map(Param::name).collect();

    // `skip(...)`: every name must be a parameter.
    let mut skipped = HashSet::new();
    for ident in &options.skip {
        let name = ident.to_string();
        match names
            .iter()
            .position(|n| n.as_deref() == Some(name.as_str()))
        {
            Some(i) => {
                skipped.insert(i);
            }
            None if name == "self" => errors.push(spanned(
                ident,
                format!("`skip(self)`, but `{}` has no `self` parameter", sig.ident),
            )),
            None => errors.push(spanned(
                ident,
                format!("`{name}` is not a parameter of `{}`", sig.ident),
            )),
        }
    }

    // Parameters the cache expression uses are not part of the key; the
    // helpers take them too.
    let used = names_used_by(&options.cache);
    let cache_params: Vec<usize> = (0..params.len())
        .filter(|&i| names[i].as_ref().is_some_and(|n| used.contains(n)))
        .collect();

    let key: Vec<usize> = (0..params.len())
        .filter(|i| !skipped.contains(i) && !cache_params.contains(i))
        .collect();
    for &i in &key {
        match &params[i] {
            Param::Pattern { pat } => errors.push(spanned(
                pat,
                "#[memoize] key parameters must be plain names: bind this one to a name \
                 (`point: (i32, i32)`) and destructure it in the body",
            )),
            Param::Named { ty, .. } => {
                if let Some(span) = impl_trait_in(ty) {
                    errors.push(
                        darling::Error::custom(
                            "an `impl Trait` parameter cannot be part of the memo key: the key \
                         needs one concrete type; take a concrete type, or leave the parameter \
                         out of the key with `skip(...)`",
                        )
                        .with_span(&span),
                    );
                }
            }
            Param::Receiver(_) => {}
        }
    }

    let return_type: Type = match &sig.output {
        ReturnType::Default => parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    if let Some(span) = impl_trait_in(&return_type) {
        errors.push(
            darling::Error::custom(
                "#[memoize] needs a concrete return type to store; `impl Trait` cannot be cached",
            )
            .with_span(&span),
        );
    }
    let output = errors.handle(classify_output(&return_type));

    let key_type = key_type(&params, &key);
    errors.finish()?;
    let Some(output) = output else {
        unreachable!("errors are returned above");
    };
    Ok(Analysis {
        params,
        key,
        cache_params,
        output,
        return_type,
        key_type,
    })
}

fn spanned<T: Spanned>(node: &T, message: impl std::fmt::Display) -> darling::Error {
    darling::Error::custom(message).with_span(&node.span())
}

/// The names a cache expression mentions as plain paths (`cache`, `self`,
/// `state` in `state.cache`).
fn names_used_by(expr: &Expr) -> HashSet<String> {
    struct Names(HashSet<String>);
    impl<'ast> Visit<'ast> for Names {
        fn visit_expr_path(&mut self, path: &'ast syn::ExprPath) {
            if path.qself.is_none() {
                if let Some(ident) = path.path.get_ident() {
                    self.0.insert(ident.to_string());
                }
            }
            syn::visit::visit_expr_path(self, path);
        }
    }
    let mut names = Names(HashSet::new());
    names.visit_expr(expr);
    names.0
}

/// Where `ty` mentions `impl Trait`, if it does.
fn impl_trait_in(ty: &Type) -> Option<Span> {
    struct Finder(Option<Span>);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, node: &'ast syn::TypeImplTrait) {
            self.0.get_or_insert(node.span());
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

/// The last segment of a path type, if `ty` is one.
fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(TypePath { qself: None, path }) => path.segments.last(),
        Type::Group(group) => last_segment(&group.elem),
        Type::Paren(paren) => last_segment(&paren.elem),
        _ => None,
    }
}

/// The type arguments of a path type's last segment.
fn type_args(segment: &syn::PathSegment) -> Vec<&Type> {
    match &segment.arguments {
        PathArguments::AngleBracketed(args) => args
            .args
            .iter()
            .filter_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `T` if `ty` is `Arc<T>` (by its last path segment).
fn arc_inner(ty: &Type) -> Option<&Type> {
    let segment = last_segment(ty)?;
    let args = type_args(segment);
    (segment.ident == "Arc" && args.len() == 1).then(|| args[0])
}

fn classify_output(ty: &Type) -> darling::Result<Output> {
    if let Some(segment) = last_segment(ty) {
        if segment.ident == "Result" {
            let Some(&value) = type_args(segment).first() else {
                return Err(spanned(
                    ty,
                    "#[memoize] cannot see the value type through this `Result` alias; write \
                     it out, as in `Result<User, Error>`",
                ));
            };
            return Ok(match arc_inner(value) {
                Some(inner) => Output::Result {
                    value: inner.clone(),
                    arc: true,
                },
                None => Output::Result {
                    value: value.clone(),
                    arc: false,
                },
            });
        }
    }
    Ok(match arc_inner(ty) {
        Some(inner) => Output::Arc {
            value: inner.clone(),
        },
        None => Output::Plain { value: ty.clone() },
    })
}

/// The memo's key type: the owned versions of the key parameters' types,
/// a tuple of them, one bare, or `()`.
fn key_type(params: &[Param], key: &[usize]) -> Type {
    let types: Vec<Type> = key
        .iter()
        .filter_map(|&i| match &params[i] {
            Param::Receiver(r) => Some(parse_quote_spanned!(r.self_token.span=> Self)),
            Param::Named { ty, .. } => Some(owned(ty)),
            Param::Pattern { .. } => None,
        })
        .collect();
    match types.as_slice() {
        [single] => single.clone(),
        _ => parse_quote!((#(#types,)*)),
    }
}

/// The owned type that serializes like `ty`: `&str` → `String`, `&[T]` →
/// `Vec<T>`, `&T` → `T`, applied inside tuples, arrays and generic
/// arguments too (`Option<&str>` → `Option<String>`), with every lifetime
/// argument made `'static`.
pub(crate) fn owned(ty: &Type) -> Type {
    let span = ty.span();
    match ty {
        Type::Reference(reference) => match &*reference.elem {
            Type::Path(p) if p.qself.is_none() && p.path.is_ident("str") => {
                parse_quote_spanned!(span=> ::std::string::String)
            }
            Type::Slice(slice) => {
                let elem = owned(&slice.elem);
                parse_quote_spanned!(span=> ::std::vec::Vec<#elem>)
            }
            other => owned(other),
        },
        Type::Paren(paren) => owned(&paren.elem),
        Type::Group(group) => owned(&group.elem),
        Type::Tuple(tuple) => {
            let mut tuple = tuple.clone();
            for elem in &mut tuple.elems {
                *elem = owned(elem);
            }
            Type::Tuple(tuple)
        }
        Type::Array(array) => {
            let mut array = array.clone();
            *array.elem = owned(&array.elem);
            Type::Array(array)
        }
        Type::Slice(slice) => {
            let mut slice = slice.clone();
            *slice.elem = owned(&slice.elem);
            Type::Slice(slice)
        }
        Type::Path(path) => {
            let mut path = path.clone();
            for segment in &mut path.path.segments {
                if let PathArguments::AngleBracketed(args) = &mut segment.arguments {
                    for arg in &mut args.args {
                        match arg {
                            GenericArgument::Type(t) => *t = owned(t),
                            GenericArgument::Lifetime(l) => {
                                *l = Lifetime::new("'static", l.span());
                            }
                            _ => {}
                        }
                    }
                }
            }
            Type::Path(path)
        }
        other => other.clone(),
    }
}

/// The named lifetimes `types` mention.
pub(crate) fn lifetimes_in<'a>(types: impl IntoIterator<Item = &'a Type>) -> HashSet<String> {
    struct Lifetimes(HashSet<String>);
    impl<'ast> Visit<'ast> for Lifetimes {
        fn visit_lifetime(&mut self, lifetime: &'ast Lifetime) {
            self.0.insert(lifetime.ident.to_string());
        }
    }
    let mut found = Lifetimes(HashSet::new());
    for ty in types {
        found.visit_type(ty);
    }
    found.0
}
