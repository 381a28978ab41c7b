//! Every rule of `#[supervised]`, checked on the parsed function. Each
//! violation is a `syn::Error` spanned on the offending tokens.

use proc_macro2::Span;
use quote::ToTokens;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{
    Attribute, FnArg, ItemFn, Lifetime, LitStr, Pat, PatType, Path, PathSegment, ReceiverKind, ReturnType, Safety,
    Token, TraitBound, Type, TypeFnPtr, TypeImplTrait, TypeReference,
};

use crate::errors::Errors;
use crate::parse::{Args, PolicyArg};

/// A parameter that the runtime supplies instead of the caller, recognised by
/// the last segment of its type. Each kind is removed from the signature the
/// caller sees and bound again inside the body.
///
/// To add a kind (such as `Ready<T>`): a variant, its place in [`Self::ALL`],
/// an arm in each method below, and its binding in `expand.rs`; each `match`
/// is exhaustive, so the compiler lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Injection {
    /// `&Scope` or `Scope`: the task's own scope.
    Scope,
    /// `CancellationToken`: the token of the task's scope.
    Token,
    /// `Ready<T>`: how the task tells `Scope::start` that it is ready.
    Ready,
}

impl Injection {
    /// Every kind, in the order the body binds them: the scope last, because
    /// an owned `Scope` parameter moves the value the others are taken from.
    pub(crate) const ALL: [Injection; 3] = [Injection::Token, Injection::Ready, Injection::Scope];

    /// Whether `segment`, the last segment of a parameter's type, names this
    /// kind.
    fn is_named_by(self, segment: &PathSegment) -> bool {
        match self {
            Injection::Scope => segment.ident == "Scope" && segment.arguments.is_none(),
            Injection::Token => segment.ident == "CancellationToken" && segment.arguments.is_none(),
            Injection::Ready => {
                segment.ident == "Ready" && matches!(segment.arguments, syn::PathArguments::AngleBracketed(_))
            }
        }
    }

    /// The marker attribute that says a parameter is of this kind whatever
    /// its type is named (`#[scope] s: &S`).
    pub(crate) fn marker(self) -> &'static str {
        match self {
            Injection::Scope => "scope",
            Injection::Token => "token",
            Injection::Ready => "ready",
        }
    }

    /// Whether the crate path `prefix` (leading `crate`, `self` and `super`
    /// removed) is one where this kind's type lives.
    fn lives_in(self, prefix: &[String], krate: &[String]) -> bool {
        let first = prefix.first().map(String::as_str);
        prefix == krate || first == Some("taskward") || (self == Injection::Token && first == Some("tokio_util"))
    }

    /// What a task has one of, for the message about a second parameter.
    fn noun(self) -> &'static str {
        match self {
            Injection::Scope => "scope",
            Injection::Token => "cancellation token",
            Injection::Ready => "`Ready` (it becomes ready once)",
        }
    }

    /// The fix for a second parameter of this kind.
    fn second_help(self) -> &'static str {
        match self {
            Injection::Scope => "remove this parameter (a `Scope` is a cheap handle: clone it in the body if needed)",
            Injection::Token => "remove this parameter (clone the token in the body if you need a second one)",
            Injection::Ready => "remove this parameter",
        }
    }

    /// Checks how the parameter is passed (`&T`, `&mut T` or `T`) and returns
    /// whether it is by shared reference.
    fn check_passing(self, ty: &Type) -> syn::Result<bool> {
        let reference = match ty {
            Type::Reference(reference) => reference,
            _ => return Ok(false),
        };
        match self {
            Injection::Scope if reference.lifetime.is_some() => Err(syn::Error::new_spanned(
                ty,
                "the scope is lent to the task's body only: write `&Scope` without a lifetime, or take `Scope` by value to move it into a `'static` future",
            )),
            Injection::Scope if reference.mutability.is_none() => Ok(true),
            Injection::Scope => Err(syn::Error::new_spanned(
                ty,
                "the scope is shared, never exclusive: take `&Scope` (or `Scope`) instead of `&mut Scope`",
            )),
            Injection::Token => Err(syn::Error::new_spanned(
                ty,
                "take the cancellation token by value: write `CancellationToken` (it is a cheap handle)",
            )),
            Injection::Ready => Err(syn::Error::new_spanned(
                ty,
                "take `Ready<T>` by value: `ready.send(value)` consumes it",
            )),
        }
    }
}

/// A parameter the runtime supplies.
pub(crate) struct Injected {
    pub(crate) kind: Injection,
    /// The parameter's attributes (`#[cfg]` applies to its binding).
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) pat: Box<Pat>,
    pub(crate) ty: Box<Type>,
    /// `&Scope` rather than `Scope`.
    pub(crate) by_ref: bool,
}

/// A checked `#[supervised]` function, ready to expand.
pub(crate) struct Model {
    /// The function as written, less the injected parameters.
    pub(crate) item: ItemFn,
    /// The injected parameters, in the order they were written.
    pub(crate) injected: Vec<Injected>,
    /// The body's return type (`()` when none is written).
    pub(crate) output: Type,
    /// The `async` keyword, where errors about the task's future as a whole
    /// (a body that is not `Send`) point.
    pub(crate) async_span: Span,
    /// The task's name; when `name_format` is set, the function's name,
    /// which the task takes if formatting panics.
    pub(crate) name: String,
    /// `name = "chunk-{part}"`: a name formatted from the parameters.
    pub(crate) name_format: Option<NameFormat>,
    pub(crate) policy: PolicyArg,
    /// `#[supervised(local)]`: the body need not be `Send`.
    pub(crate) local: bool,
    pub(crate) krate: Path,
}

/// A task name formatted from the parameters.
pub(crate) struct NameFormat {
    /// The format string, as written.
    pub(crate) lit: LitStr,
    /// The parameters it names, each once, in order.
    pub(crate) captures: Vec<syn::Ident>,
}

/// Why a task cannot borrow, for the messages about borrowed data.
const OWNED: &str = "the task runs after the call that creates it returns, so it must own its data";

/// Checks `item` against every rule and builds the model, or reports every
/// violation found, in the order they are written.
pub(crate) fn validate(args: &Args, item: &ItemFn) -> syn::Result<Model> {
    let mut errors = Errors::default();
    check_qualifiers(item, &mut errors);
    let generics_at = errors.len();
    let mut found = Found::default();
    let krate = args.krate.clone().unwrap_or_else(default_crate);
    let (injected, kept) = check_inputs(item, &krate, &mut found, &mut errors);
    if let Some(variadic) = &item.sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "a supervised task cannot be variadic; take the values as a `Vec<T>` instead",
        ));
    }
    let output = match &item.sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => {
            check_owned(ty, Position::Output, &mut found, &mut errors);
            (**ty).clone()
        }
    };
    // A lifetime parameter is reported only when no borrowed type already
    // says the same thing.
    if !found.borrow {
        let lifetimes = item.sig.generics.lifetimes().map(|param| {
            syn::Error::new_spanned(
                param,
                format!(
                    "a supervised task cannot have lifetime parameters: {OWNED}; remove `{}` and write `'static` where a bound needs a lifetime",
                    param.lifetime
                ),
            )
        });
        errors.insert(generics_at, lifetimes);
    }
    if args.local.is_some()
        && let Some(ready) = injected.iter().find(|param| param.kind == Injection::Ready)
    {
        errors.push(syn::Error::new_spanned(
            &ready.ty,
            "a `#[supervised(local)]` task cannot be started with `scope.start`: it is spawned with `scope.spawn_local`; remove this parameter",
        ));
    }
    let name_format = match &args.name {
        Some(lit) => match name_format(lit, item, &kept, &injected) {
            Ok(format) => format,
            Err(err) => {
                // The attribute comes first in the source.
                errors.insert(0, [err]);
                None
            }
        },
        None => None,
    };
    errors.finish()?;

    let mut item = item.clone();
    item.sig.inputs = kept;
    let async_span = item
        .sig
        .asyncness
        .map_or(item.sig.fn_token.span, |asyncness| asyncness.span);
    let name = match (&args.name, &name_format) {
        (Some(lit), None) => lit.value(),
        _ => unraw(&item.sig.ident),
    };
    Ok(Model {
        item,
        injected,
        output,
        async_span,
        name,
        name_format,
        policy: args.policy.unwrap_or(PolicyArg::FailFast),
        local: args.local.is_some(),
        krate,
    })
}

/// The parameters named by `lit` if it is a format string (it has a `{` or
/// a `}`, as in `format!`; `{{` is a brace), each a parameter the caller
/// passes, named as in `format!`'s captures (`{part}`, `{part:>3}`,
/// `{part:?}`). Anything else is an error at the string.
fn name_format(
    lit: &LitStr,
    item: &ItemFn,
    kept: &Punctuated<FnArg, Token![,]>,
    injected: &[Injected],
) -> syn::Result<Option<NameFormat>> {
    let text = lit.value();
    if !text.contains(['{', '}']) {
        return Ok(None);
    }
    let named = |pat: &Pat| match pat {
        Pat::Ident(binding) => Some(binding.ident.clone()),
        _ => None,
    };
    let parameters: Vec<syn::Ident> = kept
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(typed) => named(&typed.pat),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let usable = if parameters.is_empty() {
        format!("`{}` has no parameter that it could use", item.sig.ident)
    } else {
        let list: Vec<String> = parameters.iter().map(|ident| format!("`{{{ident}}}`")).collect();
        format!("it can use {}", list.join(", "))
    };
    let error = |message: String| syn::Error::new_spanned(lit, format!("{message}; {usable}"));
    let mut captures: Vec<syn::Ident> = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
            }
            '}' => {
                return Err(error(
                    "a `}` in a task name closes nothing: write `}}` for a brace".to_owned(),
                ));
            }
            '{' => {
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => inner.push(c),
                        None => {
                            return Err(error(
                                "a `{` in a task name is not closed: write `{{` for a brace, or a parameter in braces"
                                    .to_owned(),
                            ));
                        }
                    }
                }
                let arg = inner.split(':').next().unwrap_or_default().trim();
                if arg.is_empty() || arg.chars().all(|c| c.is_ascii_digit()) {
                    return Err(error(format!(
                        "`{{{inner}}}` in a task name takes no value: name the parameter in the braces"
                    )));
                }
                if syn::parse_str::<syn::Ident>(arg).is_err() {
                    return Err(error(format!(
                        "`{{{inner}}}` in a task name is not a parameter's name: a task name can only use the function's parameters, by name"
                    )));
                }
                let Some(parameter) = parameters.iter().find(|ident| *ident == arg) else {
                    let supplied = injected
                        .iter()
                        .filter_map(|param| named(&param.pat))
                        .any(|ident| ident == arg);
                    let message = if supplied {
                        format!(
                            "`{{{arg}}}` is supplied by the runtime, not by the caller: a task name uses the arguments of the call"
                        )
                    } else {
                        format!(
                            "`{{{arg}}}` is not a parameter of `{}`: a task name can only use the function's parameters, by name",
                            item.sig.ident
                        )
                    };
                    return Err(error(message));
                };
                if !captures.contains(parameter) {
                    captures.push(parameter.clone());
                }
            }
            _ => {}
        }
    }
    Ok(Some(NameFormat {
        lit: lit.clone(),
        captures,
    }))
}

/// Splits the parameters into those the runtime supplies and those the
/// caller passes, checking each.
fn check_inputs(
    item: &ItemFn,
    krate: &Path,
    found: &mut Found,
    errors: &mut Errors,
) -> (Vec<Injected>, Punctuated<FnArg, Token![,]>) {
    let mut injected: Vec<Injected> = Vec::new();
    let mut kept = Punctuated::new();
    for arg in &item.sig.inputs {
        match arg {
            FnArg::Receiver(receiver) => {
                match &receiver.kind {
                    ReceiverKind::Reference(..) => {
                        found.borrow = true;
                        errors.push(syn::Error::new_spanned(receiver, Position::Receiver.borrow_message("")));
                    }
                    ReceiverKind::Typed(_, ty) => check_owned(ty, Position::Receiver, found, errors),
                    _ => {}
                }
                kept.push(arg.clone());
            }
            FnArg::Typed(typed) => match injection(typed, krate) {
                Ok(Some(kind)) => match check_injected(kind, typed, &injected) {
                    Ok(param) => injected.push(param),
                    Err(err) => errors.push(err),
                },
                Ok(None) => {
                    check_owned(&typed.ty, Position::Parameter, found, errors);
                    kept.push(arg.clone());
                }
                Err(err) => errors.push(err),
            },
        }
    }
    (injected, kept)
}

/// `::taskward`, where generated code finds the runtime unless told otherwise.
pub(crate) fn default_crate() -> Path {
    let mut segments = Punctuated::new();
    segments.push(PathSegment::from(syn::Ident::new("taskward", Span::call_site())));
    Path {
        leading_colon: Some(Default::default()),
        segments,
    }
}

/// What comes before the function's name: not `#[supervised]` again,
/// `async`, and none of `const`, `unsafe` or `extern`.
fn check_qualifiers(item: &ItemFn, errors: &mut Errors) {
    let sig = &item.sig;
    if let Some(attr) = item.attrs.iter().find(|attr| is_supervised(attr)) {
        errors.push(syn::Error::new_spanned(
            attr,
            "`#[supervised]` is applied twice; remove one",
        ));
    }
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            constness,
            "a supervised task cannot be a `const fn`; remove `const`",
        ));
    }
    if let Safety::Unsafe(unsafety) = &sig.safety {
        errors.push(syn::Error::new_spanned(
            unsafety,
            "a supervised task cannot be an `unsafe fn`; remove `unsafe` and use an `unsafe` block inside the body",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "a supervised task cannot have an `extern` ABI; remove it",
        ));
    }
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            sig.fn_token,
            "`#[supervised]` needs an `async fn`; add `async` before `fn`",
        ));
    }
}

/// Whether `attr` is `#[supervised]` (under any path).
pub(crate) fn is_supervised(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "supervised")
}

/// The error for a return type known not to be a task result: a type of
/// the standard library other than `Result` and `()` (`u32`, `String`,
/// `Option<T>`, `Vec<T>`), a tuple, an array or `!`. Only taskward can make
/// such a type a `TaskResult`, and it does not. Any other type is checked
/// by the compiler.
pub(crate) fn not_a_result(ty: &Type) -> Option<String> {
    const STD: &[&str] = &[
        "bool", "char", "str", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
        "f32", "f64", "String", "Option", "Vec", "Box", "HashMap", "HashSet", "BTreeMap", "BTreeSet", "VecDeque",
    ];
    let known = match strip_group(ty) {
        Type::Tuple(tuple) => !tuple.elems.is_empty(),
        Type::Array(_) | Type::Slice(_) | Type::Never(_) => true,
        Type::Path(path) if path.qself.is_none() => {
            let segments = &path.path.segments;
            let in_std = segments.len() == 1
                || segments
                    .first()
                    .is_some_and(|first| ["std", "core", "alloc"].contains(&first.ident.to_string().as_str()));
            in_std
                && segments
                    .last()
                    .is_some_and(|last| STD.contains(&last.ident.to_string().as_str()))
        }
        _ => false,
    };
    if !known {
        return None;
    }
    let written = ty
        .to_token_stream()
        .to_string()
        .replace(" <", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" ::", "::")
        .replace(":: ", "::")
        .replace(" ,", ",");
    Some(format!(
        "`{written}` cannot be the result of a supervised task: return `Result<{written}, E>`, where `E: Into<Box<dyn std::error::Error + Send + Sync>>` (`std::io::Error`, `anyhow::Error`, your own error type), or return nothing (`()`); a task reports failure through `Err`, so that its parent receives it"
    ))
}

/// Whether `attr` is tracing's `#[instrument]` (under any path).
pub(crate) fn is_instrument(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "instrument")
}

/// The kind of runtime-supplied parameter `param` is, if any: the kind its
/// marker attribute says (`#[scope]`, `#[token]`, `#[ready]`), else the kind
/// its type names. A type is recognised by its last segment (`Scope`,
/// `CancellationToken`, `Ready<T>`) when it is written bare or under the
/// path of taskward (`taskward::`, the `crate = path`, and `tokio_util::`
/// for the token); a type of the same name under any other path
/// (`oauth::Scope`, `crate::Scope`) is an ordinary parameter.
pub(crate) fn injection(param: &PatType, krate: &Path) -> syn::Result<Option<Injection>> {
    let mut marked: Option<(Injection, &Attribute)> = None;
    for attr in &param.attrs {
        let Some(kind) = Injection::ALL
            .into_iter()
            .find(|kind| attr.path().is_ident(kind.marker()))
        else {
            continue;
        };
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            return Err(syn::Error::new_spanned(
                attr,
                format!("write the marker without arguments: `#[{}]`", kind.marker()),
            ));
        }
        if let Some((first, _)) = marked {
            return Err(syn::Error::new_spanned(
                attr,
                format!(
                    "a parameter has one marker, and this one is already marked `#[{}]`; remove one",
                    first.marker()
                ),
            ));
        }
        marked = Some((kind, attr));
    }
    if let Some((kind, _)) = marked {
        return Ok(Some(kind));
    }
    let Some(path) = type_path(&param.ty) else {
        return Ok(None);
    };
    let Some(last) = path.segments.last() else {
        return Ok(None);
    };
    let Some(kind) = Injection::ALL.into_iter().find(|kind| kind.is_named_by(last)) else {
        return Ok(None);
    };
    if path.leading_colon.is_none() && path.segments.len() == 1 {
        return Ok(Some(kind));
    }
    let prefix = crate_relative(path.segments.iter().take(path.segments.len() - 1));
    let krate = crate_relative(krate.segments.iter());
    Ok(kind.lives_in(&prefix, &krate).then_some(kind))
}

/// Whether the parameter `arg` is one the runtime supplies, for the stub
/// (where a mistake in its marker has been reported already).
pub(crate) fn is_injected(arg: &FnArg, krate: &Path) -> bool {
    matches!(arg, FnArg::Typed(typed) if !matches!(injection(typed, krate), Ok(None)))
}

/// The segments of a path, less a leading `crate`, `self` or `super`.
fn crate_relative<'a>(segments: impl Iterator<Item = &'a PathSegment>) -> Vec<String> {
    segments
        .map(|segment| segment.ident.to_string())
        .skip_while(|ident| ["crate", "self", "super"].contains(&ident.as_str()))
        .collect()
}

/// The path of `ty`, or of the type it references.
fn type_path(ty: &Type) -> Option<&Path> {
    match ty {
        Type::Path(path) if path.qself.is_none() => Some(&path.path),
        Type::Reference(reference) => type_path(&reference.elem),
        Type::Group(group) => type_path(&group.elem),
        Type::Paren(paren) => type_path(&paren.elem),
        _ => None,
    }
}

/// Whether `attr` is `#[cfg]` or `#[cfg_attr]`: a parameter under one may
/// be compiled out.
fn is_cfg(attr: &Attribute) -> bool {
    attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr")
}

fn check_injected(kind: Injection, typed: &PatType, earlier: &[Injected]) -> syn::Result<Injected> {
    let by_ref = kind.check_passing(strip_group(&typed.ty))?;
    // Two parameters of a kind are accepted when one of them may be
    // compiled out (`#[cfg(unix)] token: ..., #[cfg(not(unix))] token: ...`).
    let conditional = |attrs: &[Attribute]| attrs.iter().any(is_cfg);
    if let Some(first) = earlier
        .iter()
        .filter(|_| !conditional(&typed.attrs))
        .find(|param| param.kind == kind && !conditional(&param.attrs))
    {
        return Err(syn::Error::new_spanned(
            &typed.ty,
            format!(
                "a supervised task has one {}, and `{}` already receives it; {}",
                kind.noun(),
                pat_name(&first.pat),
                kind.second_help()
            ),
        ));
    }
    Ok(Injected {
        kind,
        attrs: typed.attrs.clone(),
        pat: typed.pat.clone(),
        ty: typed.ty.clone(),
        by_ref,
    })
}

/// Whether the return type `ty` borrows data, and whether it has an `impl
/// Trait` in it.
pub(crate) fn output_problems(ty: &Type) -> (bool, bool) {
    let mut found = Found::default();
    check_owned(ty, Position::Output, &mut found, &mut Errors::default());
    (found.borrow, found.impl_trait)
}

/// `ty`, or the type it references.
pub(crate) fn strip_reference(ty: &Type) -> &Type {
    match strip_group(ty) {
        Type::Reference(reference) => strip_reference(&reference.elem),
        other => other,
    }
}

fn strip_group(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => strip_group(&group.elem),
        Type::Paren(paren) => strip_group(&paren.elem),
        _ => ty,
    }
}

/// Where a type appears, for the wording of its errors.
#[derive(Clone, Copy)]
enum Position {
    Receiver,
    Parameter,
    Output,
}

impl Position {
    /// The message about borrowed data here; `parameter_fix` says what to
    /// take instead, for a parameter.
    fn borrow_message(self, parameter_fix: &str) -> String {
        match self {
            Position::Receiver => {
                format!("a supervised method cannot borrow `self`: {OWNED}; take `self` or `self: Arc<Self>`")
            }
            Position::Parameter => {
                format!("a supervised task cannot take borrowed parameters: {OWNED}; {parameter_fix}")
            }
            Position::Output => "the result of a supervised task cannot borrow: it is delivered after the call that creates the task returns; return owned data (such as a `String`, a `Vec<T>` or an `Arc<T>`)".to_owned(),
        }
    }

    fn impl_trait_message(self) -> &'static str {
        match self {
            Position::Receiver | Position::Parameter => {
                "`#[supervised]` does not accept `impl Trait` parameters; declare a type parameter instead: `fn name<T: Trait + Send + 'static>(value: T)`"
            }
            Position::Output => {
                "the result of a supervised task cannot be `impl Trait`; name the type: `Result<T, E>` or `()`"
            }
        }
    }
}

/// What [`check_owned`] found, besides the errors it reported.
#[derive(Default)]
struct Found {
    borrow: bool,
    impl_trait: bool,
}

/// Reports borrowed data (references and lifetimes other than `'static`) and
/// `impl Trait` in `ty`. Function pointers and `Fn(..)` bounds are skipped:
/// the references in their signatures are not borrows.
fn check_owned(ty: &Type, position: Position, found: &mut Found, errors: &mut Errors) {
    struct Finder<'e> {
        position: Position,
        found: &'e mut Found,
        errors: &'e mut Errors,
    }
    impl Finder<'_> {
        fn borrow(&mut self, tokens: impl ToTokens, parameter_fix: &str) {
            self.found.borrow = true;
            self.errors.push(syn::Error::new_spanned(
                tokens,
                self.position.borrow_message(parameter_fix),
            ));
        }
    }
    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_type_reference(&mut self, reference: &'ast TypeReference) {
            if reference
                .lifetime
                .as_ref()
                .is_some_and(|lifetime| lifetime.ident == "static")
            {
                syn::visit::visit_type(self, &reference.elem);
            } else {
                self.borrow(reference, owned_suggestion(reference));
            }
        }
        fn visit_lifetime(&mut self, lifetime: &'ast Lifetime) {
            if lifetime.ident != "static" {
                self.borrow(
                    lifetime,
                    "take a type without a lifetime, or with the `'static` lifetime",
                );
            }
        }
        fn visit_type_impl_trait(&mut self, impl_trait: &'ast TypeImplTrait) {
            self.found.impl_trait = true;
            self.errors
                .push(syn::Error::new(impl_trait.span(), self.position.impl_trait_message()));
        }
        fn visit_type_fn_ptr(&mut self, _: &'ast TypeFnPtr) {}
        fn visit_parenthesized_generic_arguments(&mut self, _: &'ast syn::ParenthesizedGenericArguments) {}
        fn visit_trait_bound(&mut self, bound: &'ast TraitBound) {
            if bound.lifetimes.is_none() {
                syn::visit::visit_trait_bound(self, bound);
            }
        }
    }
    Finder {
        position,
        found,
        errors,
    }
    .visit_type(ty);
}

/// What to take instead of the borrowed type `reference`.
fn owned_suggestion(reference: &TypeReference) -> &'static str {
    match strip_group(&reference.elem) {
        Type::Path(path) if path.path.is_ident("str") => "take a `String` (or an `Arc<str>` to share it)",
        Type::Slice(_) => "take a `Vec<T>` (or an `Arc<[T]>` to share it)",
        Type::TraitObject(_) => "take a `Box<dyn Trait + Send>` (or an `Arc<dyn Trait + Send + Sync>` to share it)",
        _ => "take the value itself (or an `Arc<T>` to share it)",
    }
}

fn pat_name(pat: &Pat) -> String {
    match pat {
        Pat::Ident(ident) => ident.ident.to_string(),
        other => other.to_token_stream().to_string(),
    }
}

fn unraw(ident: &syn::Ident) -> String {
    let name = ident.to_string();
    name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
}
