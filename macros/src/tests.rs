//! The macro never panics, whatever tokens it is given, and always emits
//! tokens that parse as items: malformed and random inputs are fed through
//! `supervised2` directly, from a deterministic generator (a failure names
//! its seed, so it can be replayed). Random valid uses must expand cleanly
//! and keep the caller's parameters.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;

use proc_macro2::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};

use crate::entry::supervised2;

/// Valid and invalid uses of the attribute, as (arguments, item); mutations
/// start from these.
const CORPUS: &[(&str, &str)] = &[
    (
        "",
        "async fn worker(scope: &Scope, token: CancellationToken, id: u32) -> Result<u32, E> { Ok(id) }",
    ),
    (
        r#"name = "n", policy = supervise, crate = ::facade::taskward"#,
        "pub async fn generic<T: Send + 'static>(self: Arc<Self>, items: Vec<T>) -> std::io::Result<()> \
         where T: Clone { let _ = items; Ok(()) }",
    ),
    (
        "policy = fail_fast",
        "#[doc = \"docs\"] #[inline] pub(crate) async fn unit(mut self, scope: Scope) {}",
    ),
    (
        "",
        "async fn marked(#[scope] s: &S, #[token] t: Tok, #[ready] up: Port, #[cfg(unix)] token: CancellationToken, \
         #[cfg(not(unix))] token: CancellationToken, _permit: Permit, _: Guard, (a, b): (u8, u8)) {}",
    ),
    (
        "name = \"traced\"",
        "#[tracing::instrument(skip(scope))] async fn traced(scope: &Scope, id: u32) -> Result<u32, E> { Ok(id) }",
    ),
    (
        r#"name = "chunk-{part}-of-{id:?}", policy = supervise"#,
        "async fn chunk(scope: &Scope, id: u32, mut part: usize, (a, b): (u8, u8)) -> Result<u32, E> { Ok(id) }",
    ),
    (
        r#"local, name = "rc-{id}""#,
        "async fn counter(scope: &Scope, token: CancellationToken, id: u32) -> Result<u32, E> { Ok(id) }",
    ),
    (
        "",
        "async fn borrowed<'a>(&self, name: &str, shown: impl Display, scope: &mut Scope) -> Result<&'a str, E> {}",
    ),
    (
        "",
        "async fn markers(#[scope(x)] s: &S, #[scope] #[token] t: Tok, scope: &'static Scope) -> Option<u32> { None }",
    ),
    (
        "timeout = 3, name, policy = \"supervise\", local = true, local, crate = \"x\"",
        "const async unsafe extern \"C\" fn every(token: &CancellationToken, token: CancellationToken, rest: ...) {}",
    ),
    ("name = 5, name = \"\", policy = restart", "struct Worker { id: u32 }"),
    ("", "impl Worker { async fn run(self) {} }"),
    ("", "async move |id: u32| -> Result<u32, E> { Ok(id) }"),
    ("", "trait Service { async fn serve(self); }"),
    (
        "",
        "#[supervised] async fn twice(x: Box<dyn Fn(&str) -> u32 + Send>, y: fn(&u8)) -> impl Future {}",
    ),
];

/// Words and punctuation the generator draws from: the vocabulary of the
/// attribute and of function signatures.
const WORDS: &[&str] = &[
    "async",
    "fn",
    "f",
    "self",
    "Self",
    "Scope",
    "CancellationToken",
    "Result",
    "Option",
    "impl",
    "dyn",
    "Trait",
    "const",
    "unsafe",
    "extern",
    "mut",
    "where",
    "T",
    "u32",
    "str",
    "pub",
    "crate",
    "name",
    "policy",
    "supervise",
    "fail_fast",
    "local",
    "move",
    "struct",
    "supervised",
    "for",
    "r#type",
    "scope",
    "token",
    "ready",
    "cfg",
    "instrument",
    "grace",
    "flavor",
    "worker_threads",
    "main",
];
const PUNCTS: &[char] = &[
    '&', ':', '-', '>', ',', ';', '=', '<', '#', '!', '|', '*', '+', '?', '.', '@',
];

/// xorshift64*: small, deterministic, good enough to explore.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A random token tree, with groups nested at most `depth` deep.
fn random_tree(rng: &mut Rng, depth: usize) -> TokenStream {
    let span = Span::call_site();
    match rng.below(if depth == 0 { 5 } else { 6 }) {
        0 | 1 => {
            let word = rng.pick(WORDS);
            match word.strip_prefix("r#") {
                Some(raw) => TokenTree::Ident(Ident::new_raw(raw, span)).into(),
                None => TokenTree::Ident(Ident::new(word, span)).into(),
            }
        }
        2 => {
            let spacing = if rng.below(3) == 0 {
                Spacing::Joint
            } else {
                Spacing::Alone
            };
            TokenTree::Punct(Punct::new(*rng.pick(PUNCTS), spacing)).into()
        }
        3 => TokenTree::Literal(match rng.below(6) {
            0 => Literal::string("worker"),
            1 => Literal::string(""),
            2 => Literal::u32_unsuffixed(7),
            3 => Literal::string("w-{id}"),
            4 => Literal::string("{"),
            _ => Literal::character('c'),
        })
        .into(),
        4 => {
            // A lifetime: a joint `'` and an identifier, as the compiler gives it.
            let mut lifetime = TokenStream::new();
            lifetime.extend([
                TokenTree::Punct(Punct::new('\'', Spacing::Joint)),
                TokenTree::Ident(Ident::new(if rng.below(2) == 0 { "a" } else { "static" }, span)),
            ]);
            lifetime
        }
        _ => {
            let delimiter = *rng.pick(&[
                Delimiter::Parenthesis,
                Delimiter::Brace,
                Delimiter::Bracket,
                Delimiter::None,
            ]);
            let inner = random_stream(rng, depth - 1, 6);
            TokenTree::Group(Group::new(delimiter, inner)).into()
        }
    }
}

fn random_stream(rng: &mut Rng, depth: usize, max_len: usize) -> TokenStream {
    let len = rng.below(max_len + 1);
    (0..len).flat_map(|_| random_tree(rng, depth)).collect()
}

/// `tokens` with a few random edits (delete, duplicate, replace, insert),
/// at the top level or inside groups.
fn mutate(rng: &mut Rng, tokens: TokenStream) -> TokenStream {
    let mut trees: Vec<TokenTree> = tokens.into_iter().collect();
    for _ in 0..=rng.below(3) {
        let at = rng.below(trees.len() + 1);
        match rng.below(5) {
            0 if at < trees.len() => {
                trees.remove(at);
            }
            1 if at < trees.len() => {
                let copy = trees[at].clone();
                trees.insert(at, copy);
            }
            2 if at < trees.len() => {
                trees.splice(at..=at, random_tree(rng, 2));
            }
            3 => {
                trees.splice(at..at, random_tree(rng, 2));
            }
            _ => {
                if let Some(TokenTree::Group(group)) = trees.get(at) {
                    let mut inner = Group::new(group.delimiter(), mutate(rng, group.stream()));
                    inner.set_span(group.span());
                    trees[at] = TokenTree::Group(inner);
                }
            }
        }
    }
    trees.into_iter().collect()
}

/// Runs the macro, failing with the seed and the input if it panics or emits
/// tokens that are not items. Returns whether the output carries an error.
fn run(seed: u64, args: TokenStream, item: TokenStream) -> bool {
    let input = format!("seed {seed}: #[supervised({args})] {item}");
    let output = match catch_unwind(AssertUnwindSafe(|| supervised2(args, item))) {
        Ok(output) => output,
        Err(_) => panic!("the macro panicked on {input}"),
    };
    if let Err(err) = syn::parse2::<syn::File>(output.clone()) {
        panic!("the macro emitted tokens that are not items ({err}) on {input}:\n{output}");
    }
    output.to_string().contains("compile_error")
}

fn parse(source: &str) -> TokenStream {
    TokenStream::from_str(source).expect("the corpus is valid Rust tokens")
}

#[test]
fn every_corpus_entry_expands_to_items() {
    let errors: Vec<bool> = CORPUS
        .iter()
        .map(|(args, item)| run(0, parse(args), parse(item)))
        .collect();
    // The first seven entries are valid uses; all the others are mistakes.
    assert_eq!(errors[..7], [false; 7]);
    assert!(errors[7..].iter().all(|error| *error));
}

#[test]
fn mutated_inputs_never_panic() {
    let (mut accepted, mut rejected) = (0, 0);
    for seed in 0..4000 {
        let mut rng = Rng::new(seed);
        let (args, item) = rng.pick(CORPUS);
        let (mut args, mut item) = (parse(args), parse(item));
        if rng.below(4) == 0 {
            args = mutate(&mut rng, args);
        } else {
            item = mutate(&mut rng, item);
        }
        if run(seed, args, item) {
            rejected += 1;
        } else {
            accepted += 1;
        }
    }
    // The mutations explore both sides: some inputs still expand cleanly,
    // most are reported.
    assert!(accepted > 100, "only {accepted} mutated inputs were accepted");
    assert!(rejected > 100, "only {rejected} mutated inputs were rejected");
}

/// `name = "..."` formats the name from the parameters it names: each
/// format string, on `async fn f(scope: &Scope, id: u32, r#type: u8, (a, b): (u8, u8))`,
/// is accepted (`true`) or is one error at the string.
#[test]
fn formatted_names_use_parameters_only() {
    let cases = [
        ("w-{id}", true),
        ("{id}{id:>4}-{id:?}", true),
        ("{{literal}} braces", true),
        ("{type}", false),
        ("{}", false),
        ("{0}", false),
        ("{:?}", false),
        ("{nope}", false),
        ("{scope}", false),
        ("{a}", false),
        ("{id.0}", false),
        ("{self}", false),
        ("{", false),
        ("}", false),
        ("{id", false),
        ("{{id}", false),
    ];
    let item = "async fn f(scope: &Scope, id: u32, r#type: u8, (a, b): (u8, u8)) -> Result<u32, E> { Ok(id) }";
    for (format, accepted) in cases {
        let args = TokenTree::Literal(Literal::string(format));
        let output = supervised2(quote::quote!(name = #args), parse(item));
        let errors = output.to_string().matches("compile_error").count();
        assert_eq!(errors, usize::from(!accepted), "{format:?}: {output}");
        if accepted {
            // The generated code names the string and clones what it uses.
            assert!(output.to_string().contains("format_name"), "{format:?}: {output}");
        }
    }
    // Random strings with braces and parameter names never panic.
    let pieces = ["{", "}", "{{", "}}", "id", "type", ":", "?", "0", "-", "nope", " "];
    for seed in 0..2000 {
        let mut rng = Rng::new(seed);
        let format: String = (0..rng.below(8)).map(|_| *rng.pick(&pieces)).collect();
        let args = TokenTree::Literal(Literal::string(&format));
        run(seed, quote::quote!(name = #args), parse(item));
    }
}

#[test]
fn random_inputs_never_panic() {
    for seed in 0..4000 {
        let mut rng = Rng::new(seed);
        let args = random_stream(&mut rng, 2, 6);
        let item = random_stream(&mut rng, 3, 12);
        assert!(run(seed, args, item), "random tokens were accepted as a supervised fn");
    }
}

/// Uses of `#[taskward::main]`, valid first, as (arguments, item).
const MAIN_CORPUS: &[(&str, &str)] = &[
    (
        r#"grace = "10s", flavor = "multi_thread", worker_threads = 2, crate = ::taskward"#,
        "async fn main(scope: &Scope, token: CancellationToken) -> Result<(), E> { Ok(()) }",
    ),
    (r#"flavor = "current_thread", grace = "1.5m""#, "pub async fn main() {}"),
    (
        r#"flavor = "current_thread", worker_threads = 0, grace = "1.5x", threads"#,
        "fn main<T>(self, port: u16, up: Ready<u16>) -> impl Sized {}",
    ),
    (r#"grace = 10, flavor = current_thread"#, "struct Main;"),
];

/// Runs `#[taskward::main]`, failing if it panics or emits tokens that are
/// not items. Returns whether the output carries an error.
fn run_main(seed: u64, args: TokenStream, item: TokenStream) -> bool {
    let input = format!("seed {seed}: #[taskward::main({args})] {item}");
    let output = match catch_unwind(AssertUnwindSafe(|| crate::main_attr::main2(args, item))) {
        Ok(output) => output,
        Err(_) => panic!("the macro panicked on {input}"),
    };
    if let Err(err) = syn::parse2::<syn::File>(output.clone()) {
        panic!("the macro emitted tokens that are not items ({err}) on {input}:\n{output}");
    }
    output.to_string().contains("compile_error")
}

#[test]
fn main_inputs_never_panic() {
    let errors: Vec<bool> = MAIN_CORPUS
        .iter()
        .map(|(args, item)| run_main(0, parse(args), parse(item)))
        .collect();
    assert_eq!(errors, [false, false, true, true]);
    for seed in 0..2000 {
        let mut rng = Rng::new(seed);
        let (args, item) = rng.pick(MAIN_CORPUS);
        let (args, item) = match rng.below(3) {
            0 => (mutate(&mut rng, parse(args)), parse(item)),
            1 => (parse(args), mutate(&mut rng, parse(item))),
            _ => (random_stream(&mut rng, 2, 6), random_stream(&mut rng, 3, 12)),
        };
        run_main(seed, args, item);
    }
}

#[test]
fn empty_input_is_reported() {
    assert!(run(0, TokenStream::new(), TokenStream::new()));
}

#[test]
fn a_bad_argument_keeps_the_crate_path_for_the_stub() {
    let output = supervised2(
        parse("crate = ::facade::taskward, timeout = 3"),
        parse("async fn worker(id: &str) {}"),
    )
    .to_string();
    assert!(output.contains("compile_error"));
    let through_facade = output.matches(":: facade :: taskward :: __private").count();
    assert!(through_facade > 0, "{output}");
    assert_eq!(
        output.matches(":: taskward :: __private").count(),
        through_facade,
        "{output}"
    );
}

// Regression: an item followed by an empty invisible group (syn accepts it
// as one item) used to be emitted with the group, which is not an item.
#[test]
fn an_item_with_a_trailing_invisible_group_is_emitted_as_an_item() {
    let mut item = parse("struct Worker;");
    item.extend([TokenTree::Group(Group::new(Delimiter::None, TokenStream::new()))]);
    assert!(run(0, TokenStream::new(), item));
}

#[test]
fn every_mistake_is_reported_once_in_source_order() {
    let output = supervised2(
        parse("timeout = 1"),
        parse("fn worker(id: &str, scope: &mut Scope) -> Result<u32, E> { Ok(0) }"),
    )
    .to_string();
    let positions: Vec<usize> = [
        "unknown argument `timeout`",
        "needs an `async fn`",
        "borrowed",
        "`&mut Scope`",
    ]
    .iter()
    .map(|needle| {
        assert_eq!(output.matches(needle).count(), 1, "{needle} in {output}");
        output.find(needle).unwrap_or_default()
    })
    .collect();
    assert!(positions.is_sorted(), "{output}");
}

/// A random valid use of the attribute: its arguments, the function, the
/// parameters the caller must still pass (receiver included), the task's
/// name and the function's name.
struct ValidUse {
    args: String,
    item: String,
    kept: Vec<String>,
    task_name: String,
    fn_name: &'static str,
}

fn valid_use(rng: &mut Rng) -> ValidUse {
    const NAMES: &[(&str, &str)] = &[("worker", "worker"), ("fetch_all", "fetch_all"), ("r#type", "type")];
    // (pattern, type); `{}` in a pattern is replaced by the parameter's index.
    const PARAMS: &[(&str, &str)] = &[
        ("id{}", "u32"),
        ("mut count{}", "u64"),
        ("name{}", "String"),
        ("(a{}, b{})", "(u8, u16)"),
        ("_", "std::path::PathBuf"),
        ("map{}", "std::collections::HashMap<String, Vec<u8>>"),
        ("callback{}", "Box<dyn Fn(&str) -> usize + Send + Sync>"),
        ("pointer{}", "fn(&str) -> usize"),
        ("tx{}", "tokio::sync::mpsc::Sender<Vec<u8>>"),
        ("shared{}", "std::sync::Arc<str>"),
        ("_permit{}", "tokio::sync::OwnedSemaphorePermit"),
        ("grant{}", "oauth::Scope"),
    ];
    const GENERIC_PARAMS: &[(&str, &str)] = &[("item{}", "T"), ("items{}", "Vec<T>"), ("maybe{}", "Option<T>")];
    const SCOPES: &[&str] = &[
        "scope: &Scope",
        "scope: Scope",
        "s: &taskward::Scope",
        "mut scope: ::taskward::Scope",
        "#[scope] s: &S",
        "#[cfg(unix)] scope: &Scope",
    ];
    const TOKENS: &[&str] = &[
        "token: CancellationToken",
        "stop: tokio_util::sync::CancellationToken",
        "#[token] stop: Stop",
    ];
    const READIES: &[&str] = &[
        "ready: Ready<u16>",
        "up: taskward::Ready<std::net::SocketAddr>",
        "#[ready] up: Port",
    ];
    const RECEIVERS: &[&str] = &["self", "mut self", "self: Arc<Self>", "self: std::sync::Arc<Self>"];

    let (fn_name, unraw) = *rng.pick(NAMES);
    let generic = rng.below(3) == 0;
    let mut kept: Vec<String> = Vec::new();
    if rng.below(5) == 0 {
        kept.push((*rng.pick(RECEIVERS)).to_owned());
    }
    for index in 0..rng.below(5) {
        let (pattern, ty) = if generic && rng.below(3) == 0 {
            *rng.pick(GENERIC_PARAMS)
        } else {
            *rng.pick(PARAMS)
        };
        kept.push(format!("{}: {ty}", pattern.replace("{}", &index.to_string())));
    }
    // The injected parameters go anywhere after the receiver.
    let mut inputs = kept.clone();
    let first = usize::from(inputs.first().is_some_and(|input| input.contains("self")));
    for injected in [SCOPES, TOKENS, READIES] {
        if rng.below(2) == 0 {
            let at = first + rng.below(inputs.len() - first + 1);
            inputs.insert(at, (*rng.pick(injected)).to_owned());
        }
    }
    let output = *rng.pick(&[
        "",
        "-> Result<u32, E>",
        "-> std::io::Result<()>",
        "-> anyhow::Result<String>",
        "-> ()",
    ]);
    let visibility = *rng.pick(&["", "pub ", "pub(crate) "]);
    let (generics, where_clause) = match (generic, rng.below(2)) {
        (false, _) => ("", ""),
        (true, 0) => ("<T: Send + 'static>", ""),
        (true, _) => ("<T>", "where T: Clone + Send + 'static"),
    };
    let item = format!(
        "/// Docs.\n#[inline] {visibility}async fn {fn_name}{generics}({}) {output} {where_clause} {{ Default::default() }}",
        inputs.join(", ")
    );

    let mut args = Vec::new();
    let mut task_name = unraw.to_owned();
    if rng.below(3) == 0 {
        task_name = format!("task-{}", rng.below(100));
        args.push(format!("name = \"{task_name}\""));
    }
    if rng.below(3) == 0 {
        args.push((*rng.pick(&["policy = supervise", "policy = fail_fast"])).to_owned());
    }
    if rng.below(4) == 0 {
        args.push("crate = ::facade::taskward".to_owned());
    }
    if args.len() > 1 && rng.below(2) == 0 {
        args.reverse();
    }
    ValidUse {
        args: args.join(", "),
        item,
        kept,
        task_name,
        fn_name,
    }
}

/// The other side of the inputs above: random *valid* uses (receivers,
/// generics, patterns, the three injected kinds anywhere, every argument)
/// expand without an error to one function that keeps the caller's
/// parameters, in order, and nothing else.
#[test]
fn random_valid_signatures_keep_the_callers_parameters() {
    for seed in 0..1000 {
        let mut rng = Rng::new(seed);
        let valid = valid_use(&mut rng);
        let input = format!("seed {seed}: #[supervised({})] {}", valid.args, valid.item);
        let output = supervised2(parse(&valid.args), parse(&valid.item));
        let text = output.to_string();
        assert!(
            !text.contains("compile_error"),
            "a valid use was rejected: {input}\n{text}"
        );
        let file: syn::File = syn::parse2(output).unwrap_or_else(|err| panic!("not items ({err}): {input}"));
        let [syn::Item::Fn(item)] = file.items.as_slice() else {
            panic!("not one function: {input}\n{text}");
        };
        assert_eq!(item.sig.ident.to_string(), valid.fn_name, "{input}");
        assert!(item.sig.asyncness.is_none(), "{input}");
        // The caller passes exactly the other parameters, in order (their
        // patterns are matched inside the body).
        let parameter_type = |arg: &syn::FnArg| match arg {
            syn::FnArg::Typed(typed) => {
                let ty = &typed.ty;
                quote::quote!(#ty).to_string()
            }
            syn::FnArg::Receiver(receiver) => quote::quote!(#receiver).to_string(),
        };
        let inputs: Vec<String> = item.sig.inputs.iter().map(parameter_type).collect();
        let kept: Vec<String> = valid
            .kept
            .iter()
            .map(|arg| parameter_type(&syn::parse_str(arg).expect("the generator writes parameters")))
            .collect();
        assert_eq!(inputs, kept, "{input}");
        let syn::ReturnType::Type(_, output) = &item.sig.output else {
            panic!("no return type: {input}");
        };
        assert!(quote::quote!(#output).to_string().contains("Supervised <"), "{input}");
        assert!(
            text.contains(&format!("\"{}\"", valid.task_name)),
            "the task is not named `{}`: {input}\n{text}",
            valid.task_name
        );
        // `Supervised` is `#[must_use]`; the function is only if it says so.
        assert_eq!(
            item.attrs.iter().any(|attr| attr.path().is_ident("must_use")),
            valid.item.contains("must_use"),
            "{input}"
        );
        assert!(item.attrs.iter().any(|attr| attr.path().is_ident("inline")), "{input}");
    }
}

/// The block "What the rewrite does" in the `supervised` docs (src/lib.rs
/// of the `taskward` crate) shows an example and what it becomes: expanding
/// the example must give that text, `::taskward::__private` written
/// `__private`. Regression: the docs still showed a closure with `Box::pin`
/// long after the macro stopped generating one.
#[test]
fn the_rewrite_shown_in_the_docs_is_what_the_macro_generates() {
    let docs = include_str!("../../src/lib.rs");
    let section = &docs[docs.find("/// # What the rewrite does").expect("the section is there")..];
    let mut blocks = section.split("/// ```ignore\n").skip(1).map(|block| {
        let block = &block[..block.find("/// ```\n").expect("the block is closed")];
        block
            .lines()
            .map(|line| line.strip_prefix("/// ").unwrap_or(line.trim_start_matches("///")))
            .collect::<Vec<_>>()
            .join("\n")
    });
    let (example, shown) = (blocks.next().unwrap(), blocks.next().unwrap());
    let (attr, item) = example.split_once("#[supervised(").expect("the example is supervised");
    let (args, item) = item.split_once(")]").expect("the attribute is closed");
    // Compared without spaces: printed tokens space joint punctuation
    // (`> >`) as they were made.
    let compact = |tokens: TokenStream| tokens.to_string().replace(' ', "");
    let expanded = compact(supervised2(parse(args), parse(&format!("{attr}{item}"))));
    assert_eq!(
        expanded.replace("::taskward::__private::", "__private::"),
        compact(parse(&shown))
    );
}

/// A function that names neither its scope nor its token (nor a `Ready`)
/// does not take its scope: its body has no `__private::scope()`, and its
/// task is made with `Supervised::new_unscoped`, so that the runtime does
/// not hand it one. Any such parameter takes it, even one under a `#[cfg]`
/// (compiled in or not, which the macro cannot know).
#[test]
fn only_a_function_that_names_its_scope_or_token_takes_it() {
    let takes_scope = |item: &str| {
        let output = supervised2(TokenStream::new(), parse(item)).to_string();
        assert!(!output.contains("compile_error"), "{item}: {output}");
        let scoped = output.contains(":: scope ()");
        let unscoped = output.contains("new_unscoped");
        assert_ne!(scoped, unscoped, "{item}: {output}");
        scoped
    };
    assert!(!takes_scope("async fn leaf(i: usize) -> Result<usize, E> { Ok(i) }"));
    assert!(!takes_scope("async fn leaf(_permit: Permit, (a, b): (u8, u8)) {}"));
    assert!(!takes_scope("async fn run(self: Arc<Self>) {}"));
    assert!(takes_scope("async fn f(scope: &Scope) {}"));
    assert!(takes_scope("async fn f(i: u8, scope: Scope) {}"));
    assert!(takes_scope("async fn f(token: CancellationToken) {}"));
    assert!(takes_scope("async fn f(up: Ready<u16>) {}"));
    assert!(takes_scope("async fn f(#[scope] s: &S) {}"));
    assert!(takes_scope("async fn f(#[cfg(any())] scope: &Scope) {}"));
}

/// A function that names its token is made with
/// `Supervised::new_with_token`, so that its token is made by the spawn;
/// one that names only its scope or a `Ready`, with `Supervised::new`. A
/// local one is always made with `LocalSupervised::new`.
#[test]
fn only_a_function_that_names_its_token_has_it_made_by_the_spawn() {
    let constructor = |attr: &str, item: &str| {
        let output = supervised2(parse(attr), parse(item)).to_string();
        assert!(!output.contains("compile_error"), "{item}: {output}");
        ["new_with_token", "new_unscoped", "new"]
            .into_iter()
            .find(|new| output.contains(&format!(":: {new} (")))
            .unwrap_or_else(|| panic!("{item}: no constructor in {output}"))
    };
    assert_eq!(
        constructor("", "async fn f(token: CancellationToken) {}"),
        "new_with_token"
    );
    assert_eq!(
        constructor(
            "",
            "async fn f(scope: &Scope, t: tokio_util::sync::CancellationToken) {}"
        ),
        "new_with_token"
    );
    assert_eq!(
        constructor("", "async fn f(#[token] t: Tok, i: u8) {}"),
        "new_with_token"
    );
    assert_eq!(
        constructor("", "async fn f(#[cfg(any())] token: CancellationToken) {}"),
        "new_with_token"
    );
    assert_eq!(constructor("", "async fn f(scope: &Scope) {}"), "new");
    assert_eq!(constructor("", "async fn f(up: Ready<u16>) {}"), "new");
    assert_eq!(constructor("", "async fn f(i: u8) {}"), "new_unscoped");
    assert_eq!(constructor("local", "async fn f(token: CancellationToken) {}"), "new");
}
