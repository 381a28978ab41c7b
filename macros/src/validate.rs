//! Every rule of `#[supervised]`, checked on the parsed function. Each
//! violation is a `syn::Error` spanned on the offending tokens.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{FnArg, GenericParam, ItemFn, Pat, Path, ReceiverKind, ReturnType, Safety, Type};

use crate::parse::{Args, PolicyArg};

/// A parameter the runtime supplies (the scope, the token or the `Ready`).
pub(crate) struct Injected {
    pub(crate) pat: Box<Pat>,
    pub(crate) ty: Box<Type>,
    /// `&Scope` rather than `Scope`.
    pub(crate) by_ref: bool,
}

/// A checked `#[supervised]` function, ready to expand.
pub(crate) struct Model {
    /// The function without `async` and without the injected parameters.
    pub(crate) item: ItemFn,
    pub(crate) scope: Option<Injected>,
    pub(crate) token: Option<Injected>,
    pub(crate) ready: Option<Injected>,
    /// The body's return type (`()` when none is written).
    pub(crate) output: Type,
    pub(crate) name: String,
    pub(crate) policy: PolicyArg,
    pub(crate) krate: Path,
}

const BORROW_HELP: &str = "a supervised task runs after the call returns, so it must own its data: \
    take an owned type (`String`, `Vec<T>`), an `Arc<T>`, or for a method `self` or `self: Arc<Self>`";

/// Checks `item` against every rule and builds the model, or reports every
/// violation found.
pub(crate) fn validate(args: Args, mut item: ItemFn) -> syn::Result<Model> {
    let mut errors = Errors::default();
    let sig = &item.sig;

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
            "#[supervised] needs an `async fn`; write `async fn` here",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic.dots,
            "a supervised task cannot be variadic; take a `Vec<T>` instead",
        ));
    }
    for param in &sig.generics.params {
        if let GenericParam::Lifetime(lifetime) = param {
            errors.push(syn::Error::new_spanned(
                lifetime,
                format!("a supervised task cannot have lifetime parameters: {BORROW_HELP}"),
            ));
        }
    }

    let mut scope: Option<Injected> = None;
    let mut token: Option<Injected> = None;
    let mut ready: Option<Injected> = None;
    let mut kept = syn::punctuated::Punctuated::<FnArg, syn::Token![,]>::new();
    for arg in std::mem::take(&mut item.sig.inputs) {
        match &arg {
            FnArg::Receiver(receiver) => {
                if let ReceiverKind::Reference(..) = &receiver.kind {
                    errors.push(syn::Error::new_spanned(
                        receiver,
                        format!("a supervised method cannot borrow `self`: {BORROW_HELP}"),
                    ));
                } else if let ReceiverKind::Typed(_, ty) = &receiver.kind {
                    check_owned(ty, &mut errors);
                }
                kept.push(arg);
            }
            FnArg::Typed(typed) => match classify(&typed.ty) {
                Kind::Scope { by_ref } => {
                    if let Some(first) = &scope {
                        errors.push(syn::Error::new_spanned(
                            &typed.ty,
                            format!(
                                "a supervised task has one scope, and `{}` already receives it; remove this parameter",
                                pat_name(&first.pat)
                            ),
                        ));
                    } else {
                        scope = Some(Injected {
                            pat: typed.pat.clone(),
                            ty: typed.ty.clone(),
                            by_ref,
                        });
                    }
                }
                Kind::Token => {
                    if let Some(first) = &token {
                        errors.push(syn::Error::new_spanned(
                            &typed.ty,
                            format!(
                                "a supervised task has one cancellation token, and `{}` already receives it; remove this parameter (clone the token inside the body if you need two)",
                                pat_name(&first.pat)
                            ),
                        ));
                    } else {
                        token = Some(Injected {
                            pat: typed.pat.clone(),
                            ty: typed.ty.clone(),
                            by_ref: false,
                        });
                    }
                }
                Kind::Ready => {
                    if let Some(first) = &ready {
                        errors.push(syn::Error::new_spanned(
                            &typed.ty,
                            format!(
                                "a supervised task becomes ready once, and `{}` already receives its `Ready`; remove this parameter",
                                pat_name(&first.pat)
                            ),
                        ));
                    } else {
                        ready = Some(Injected {
                            pat: typed.pat.clone(),
                            ty: typed.ty.clone(),
                            by_ref: false,
                        });
                    }
                }
                Kind::MutScope(ty) => {
                    errors.push(syn::Error::new_spanned(
                        ty,
                        "the scope is shared, not exclusive: take `&Scope` (or `Scope`) instead of `&mut Scope`",
                    ));
                }
                Kind::BorrowedToken(ty) => {
                    errors.push(syn::Error::new_spanned(
                        ty,
                        "take the cancellation token by value: write `CancellationToken` instead of a reference",
                    ));
                }
                Kind::Other => {
                    check_owned(&typed.ty, &mut errors);
                    kept.push(arg);
                }
            },
        }
    }
    item.sig.inputs = kept;

    let output = match &item.sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => {
            if let Some(span) = find_impl_trait(ty) {
                errors.push(syn::Error::new(
                    span,
                    "a supervised task cannot return `impl Trait`; name the type: `Result<T, E>` or `()`",
                ));
            }
            (**ty).clone()
        }
    };

    errors.finish()?;

    let name = args.name.map_or_else(|| unraw(&item.sig.ident), |name| name.value());
    Ok(Model {
        item,
        scope,
        token,
        ready,
        output,
        name,
        policy: args.policy.unwrap_or(PolicyArg::FailFast),
        krate: args.krate.unwrap_or_else(|| syn::parse_quote!(::taskward)),
    })
}

enum Kind<'a> {
    Scope { by_ref: bool },
    MutScope(&'a Type),
    Token,
    BorrowedToken(&'a Type),
    Ready,
    Other,
}

/// Recognises the runtime's parameters by the last segment of their type.
fn classify(ty: &Type) -> Kind<'_> {
    match ty {
        Type::Reference(reference) => match last_ident(&reference.elem).as_deref() {
            Some("Scope") if reference.mutability.is_some() => Kind::MutScope(ty),
            Some("Scope") => Kind::Scope { by_ref: true },
            Some("CancellationToken") => Kind::BorrowedToken(ty),
            _ => Kind::Other,
        },
        Type::Group(group) => classify(&group.elem),
        Type::Paren(paren) => classify(&paren.elem),
        Type::Path(path)
            if path.qself.is_none()
                && path.path.segments.last().is_some_and(|segment| {
                    segment.ident == "Ready" && matches!(segment.arguments, syn::PathArguments::AngleBracketed(_))
                }) =>
        {
            Kind::Ready
        }
        _ => match last_ident(ty).as_deref() {
            Some("Scope") => Kind::Scope { by_ref: false },
            Some("CancellationToken") => Kind::Token,
            _ => Kind::Other,
        },
    }
}

fn last_ident(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(path) if path.qself.is_none() => {
            let segment = path.path.segments.last()?;
            segment.arguments.is_none().then(|| segment.ident.to_string())
        }
        Type::Group(group) => last_ident(&group.elem),
        Type::Paren(paren) => last_ident(&paren.elem),
        _ => None,
    }
}

/// Reports borrowed data and `impl Trait` in a parameter type.
fn check_owned(ty: &Type, errors: &mut Errors) {
    struct Finder<'e> {
        errors: &'e mut Errors,
    }
    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_type_reference(&mut self, reference: &'ast syn::TypeReference) {
            let is_static = reference
                .lifetime
                .as_ref()
                .is_some_and(|lifetime| lifetime.ident == "static");
            if !is_static {
                self.errors.push(syn::Error::new_spanned(
                    reference,
                    format!("a supervised task cannot take borrowed parameters: {BORROW_HELP}"),
                ));
                return;
            }
            syn::visit::visit_type_reference(self, reference);
        }
        fn visit_type_impl_trait(&mut self, impl_trait: &'ast syn::TypeImplTrait) {
            self.errors.push(syn::Error::new_spanned(
                impl_trait,
                "a supervised task cannot take `impl Trait` parameters; add a generic parameter instead (`fn f<T: Trait + Send + 'static>(x: T)`)",
            ));
        }
        fn visit_lifetime(&mut self, lifetime: &'ast syn::Lifetime) {
            if lifetime.ident != "static" && lifetime.ident != "_" {
                self.errors.push(syn::Error::new_spanned(
                    lifetime,
                    format!("a supervised task cannot take borrowed parameters: {BORROW_HELP}"),
                ));
            }
        }
    }
    Finder { errors }.visit_type(ty);
}

fn find_impl_trait(ty: &Type) -> Option<Span> {
    struct Finder(Option<Span>);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, impl_trait: &'ast syn::TypeImplTrait) {
            self.0.get_or_insert(impl_trait.span());
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

fn pat_name(pat: &Pat) -> String {
    match pat {
        Pat::Ident(ident) => ident.ident.to_string(),
        _ => "another parameter".to_owned(),
    }
}

fn unraw(ident: &syn::Ident) -> String {
    let name = ident.to_string();
    name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
}

/// Collects every violation, so that one expansion reports them all.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(err),
            None => self.0 = Some(err),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}
