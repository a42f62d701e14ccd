//! The attribute's options: `#[memoize(cache = …, timeout = …, skip(…), …)]`.

use darling::ast::NestedMeta;
use darling::{Error, FromMeta};
use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Meta};

/// The options as written, before they are checked against each other.
#[derive(FromMeta)]
struct RawOptions {
    cache: Option<CacheExpr>,
    timeout: Option<TimeArg<false>>,
    timeout_ms: Option<TimeArg<true>>,
    #[darling(default)]
    skip: SkipList,
    name: Option<LitStr>,
    #[darling(default)]
    cache_none: bool,
    #[darling(default)]
    group: bool,
    source_check: Option<bool>,
    unless: Option<PredicateExpr>,
    forced_update: Option<PredicateExpr>,
    filter: Option<PredicateExpr>,
}

/// The checked options.
pub(crate) struct Options {
    /// Evaluates to `&Cache`, `Cache` or anything that derefs to `Cache`.
    pub(crate) cache: Expr,
    pub(crate) lifetime: Lifetime,
    pub(crate) skip: Vec<Ident>,
    pub(crate) name: Option<LitStr>,
    pub(crate) cache_none: bool,
    /// Whether entries are grouped by the first key parameter.
    pub(crate) group: bool,
    /// Whether a hash of the function's tokens stamps its values (on by
    /// default).
    pub(crate) source_check: bool,
    /// `Fn() -> bool`: skip the cache for this call.
    pub(crate) unless: Option<Expr>,
    /// `Fn() -> bool`: load and store over the cached value.
    pub(crate) forced_update: Option<Expr>,
    /// `Fn(&V) -> bool`: which loaded values are kept.
    pub(crate) filter: Option<Expr>,
}

/// How long results live.
#[derive(Clone, Copy)]
pub(crate) enum Lifetime {
    /// The cache's default timeout.
    Default,
    Secs(u64),
    Millis(u64),
    Never,
}

impl Options {
    /// Parses the attribute's arguments.
    pub(crate) fn parse(args: TokenStream) -> darling::Result<Self> {
        let items = NestedMeta::parse_meta_list(args)?;
        let raw = RawOptions::from_list(&items)?;
        let mut errors = Error::accumulator();
        let cache = match raw.cache {
            Some(CacheExpr(expr)) => Some(expr),
            None => {
                errors.push(Error::custom(
                    "#[memoize] needs `cache = <expression>`: the `Cache` to memoize into, \
                     e.g. `#[memoize(cache = cache)]` for a `cache: &Cache` parameter or \
                     `#[memoize(cache = crate::CACHE)]` for a static",
                ));
                None
            }
        };
        let lifetime = match (raw.timeout, raw.timeout_ms) {
            (Some(_), Some(ms)) => {
                errors.push(
                    Error::custom(
                        "give either `timeout` (seconds) or `timeout_ms` (milliseconds), not both",
                    )
                    .with_span(&ms.key_span),
                );
                Lifetime::Default
            }
            (Some(TimeArg { amount: 0, .. }), None) | (None, Some(TimeArg { amount: 0, .. })) => {
                Lifetime::Never
            }
            (Some(secs), None) => Lifetime::Secs(secs.amount),
            (None, Some(ms)) => Lifetime::Millis(ms.amount),
            (None, None) => Lifetime::Default,
        };
        if let Some(name) = &raw.name {
            if name.value().is_empty() {
                errors.push(Error::custom("the memo `name` must not be empty").with_span(name));
            }
        }
        errors.finish()?;
        let Some(cache) = cache else {
            unreachable!("a missing cache is reported above");
        };
        Ok(Self {
            cache,
            lifetime,
            skip: raw.skip.0,
            name: raw.name,
            cache_none: raw.cache_none,
            group: raw.group,
            source_check: raw.source_check.unwrap_or(true),
            unless: raw.unless.map(|p| p.0),
            forced_update: raw.forced_update.map(|p| p.0),
            filter: raw.filter.map(|p| p.0),
        })
    }
}

/// `cache = <any expression>`.
struct CacheExpr(Expr);

impl FromMeta for CacheExpr {
    fn from_meta(item: &Meta) -> darling::Result<Self> {
        match item {
            Meta::NameValue(nv) => Ok(Self(ungroup(&nv.value).clone())),
            _ => Err(Error::custom(
                "expected `cache = <expression>` (a `&Cache`, a `Cache` or a static holding one)",
            )
            .with_span(item)),
        }
    }
}

/// `unless = <expr>`, `forced_update = <expr>`, `filter = <expr>`: a
/// function or closure.
struct PredicateExpr(Expr);

impl FromMeta for PredicateExpr {
    fn from_meta(item: &Meta) -> darling::Result<Self> {
        match item {
            Meta::NameValue(nv) => Ok(Self(ungroup(&nv.value).clone())),
            _ => Err(Error::custom(
                "expected `<option> = <function or closure>`, as in `unless = || is_preview()` \
                 or `filter = |value| !value.is_empty()`",
            )
            .with_span(item)),
        }
    }
}

/// `timeout = <seconds>` or, with `MS`, `timeout_ms = <milliseconds>`.
struct TimeArg<const MS: bool> {
    amount: u64,
    /// The option's name, where a conflict is reported.
    key_span: Span,
}

impl<const MS: bool> FromMeta for TimeArg<MS> {
    fn from_meta(item: &Meta) -> darling::Result<Self> {
        let (option, unit, example) = if MS {
            ("timeout_ms", "milliseconds", "timeout_ms = 1500")
        } else {
            ("timeout", "seconds", "timeout = 600")
        };
        let message = format!(
            "`{option}` must be a whole number of {unit}, as in `{example}` (0: never expire)"
        );
        let Meta::NameValue(nv) = item else {
            return Err(Error::custom(message).with_span(item));
        };
        match ungroup(&nv.value) {
            Expr::Lit(ExprLit {
                lit: Lit::Int(int), ..
            }) => match int.base10_parse::<u64>() {
                Ok(amount) => Ok(Self {
                    amount,
                    key_span: nv.path.span(),
                }),
                Err(_) => Err(Error::custom(message).with_span(int)),
            },
            other => Err(Error::custom(message).with_span(other)),
        }
    }
}

/// `skip(a, b, self)`.
#[derive(Default)]
struct SkipList(Vec<Ident>);

impl FromMeta for SkipList {
    fn from_list(items: &[NestedMeta]) -> darling::Result<Self> {
        let mut errors = Error::accumulator();
        let mut names = Vec::new();
        for item in items {
            match item {
                NestedMeta::Meta(Meta::Path(path)) if path.get_ident().is_some() => {
                    names.extend(path.get_ident().cloned());
                }
                other => errors.push(
                    Error::custom("`skip` takes parameter names, as in `skip(db, self)`")
                        .with_span(other),
                ),
            }
        }
        errors.finish_with(Self(names))
    }

    fn from_word() -> darling::Result<Self> {
        Err(Error::custom(
            "`skip` takes parameter names, as in `skip(db, self)`",
        ))
    }
}

/// Looks through the invisible groups `macro_rules!` wraps fragments in.
fn ungroup(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(group) => ungroup(&group.expr),
        other => other,
    }
}
