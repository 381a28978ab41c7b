//! Collects the mistakes found in one use of the attribute, so that a single
//! expansion reports each of them once, in the order they are written.

/// Every `syn::Error` found so far.
#[derive(Default)]
pub(crate) struct Errors(Vec<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, err: syn::Error) {
        self.0.push(err);
    }

    /// Adds the error of `result`, if any.
    pub(crate) fn push_result(&mut self, result: syn::Result<()>) {
        if let Err(err) = result {
            self.push(err);
        }
    }

    /// Adds `errs` before the error at `index` (or at the end), for mistakes
    /// that can only be judged once what follows them has been read.
    pub(crate) fn insert(&mut self, index: usize, errs: impl IntoIterator<Item = syn::Error>) {
        let index = index.min(self.0.len());
        self.0.splice(index..index, errs);
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// All the errors combined into one, if there are any.
    pub(crate) fn finish(self) -> syn::Result<()> {
        let mut errors = self.0.into_iter();
        match errors.next() {
            None => Ok(()),
            Some(mut all) => {
                all.extend(errors);
                Err(all)
            }
        }
    }
}
