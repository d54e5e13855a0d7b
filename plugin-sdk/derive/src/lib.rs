//! `#[derive(Merge)]`: a plugin's state merged field by field, so a plugin does not write
//! `merge` by hand. Each field is merged with `larmon_plugin_sdk::Merge` (numbers add,
//! histograms and series bin by bin, vectors element by element, maps key by key) unless an
//! attribute says otherwise:
//!
//! - `#[merge(extend)]` — append the other part's items (a list of events, a map whose keys
//!   never repeat);
//! - `#[merge(max)]`, `#[merge(min)]` — keep the larger or smaller value;
//! - `#[merge(later)]` — an `Option` that carries on from batch to batch: the later part's value
//!   when it has one;
//! - `#[merge(with = path)]` — `path(&mut self.field, other.field) -> Result<(), String>`;
//! - `#[merge(skip)]`, and any `#[serde(skip)]` field (settings, geometry: not state) — left
//!   as it is.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::{format_ident, quote};
use syn::{Data, DeriveInput, Fields, Index, Member, parse_macro_input};

/// See the crate documentation.
#[proc_macro_derive(Merge, attributes(merge))]
pub fn derive_merge(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// How one field is merged.
enum Rule {
    Merge,
    Skip,
    Helper(&'static str),
    With(syn::Path),
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "#[derive(Merge)] is for structs; implement larmon_plugin_sdk::Merge by hand here",
        ));
    };
    let sdk = quote!(::larmon_plugin_sdk);
    let mut steps = Vec::new();
    let fields: Vec<&syn::Field> = match &data.fields {
        Fields::Named(named) => named.named.iter().collect(),
        Fields::Unnamed(unnamed) => unnamed.unnamed.iter().collect(),
        Fields::Unit => Vec::new(),
    };
    for (index, field) in fields.into_iter().enumerate() {
        let member = match &field.ident {
            Some(ident) => Member::Named(ident.clone()),
            None => Member::Unnamed(Index::from(index)),
        };
        let label = match &field.ident {
            Some(ident) => ident.to_string(),
            None => index.to_string(),
        };
        let call = match rule(field)? {
            Rule::Skip => continue,
            Rule::Merge => quote!(#sdk::Merge::merge(&mut self.#member, other.#member)),
            Rule::Helper(name) => {
                let helper = format_ident!("{}", name);
                quote!(#sdk::merge::#helper(&mut self.#member, other.#member))
            }
            Rule::With(path) => quote!(#path(&mut self.#member, other.#member)),
        };
        steps.push(quote! {
            #call.map_err(|e| ::std::format!("{}: {}", #label, e))?;
        });
    }
    let name = &input.ident;
    let mut generics = input.generics.clone();
    for param in generics.type_params_mut() {
        param.bounds.push(syn::parse_quote!(#sdk::Merge));
    }
    let (impl_generics, type_generics, where_clause) = generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics #sdk::Merge for #name #type_generics #where_clause {
            #[allow(unused_variables)]
            fn merge(&mut self, other: Self) -> ::core::result::Result<(), ::std::string::String> {
                #(#steps)*
                ::core::result::Result::Ok(())
            }
        }
    })
}

/// The field's rule from its `#[merge(...)]` and `#[serde(skip...)]` attributes.
fn rule(field: &syn::Field) -> syn::Result<Rule> {
    let mut rule = Rule::Merge;
    for attr in &field.attrs {
        if attr.path().is_ident("serde") {
            // `skip` or `skip_deserializing`: not in the snapshot, so not state to merge.
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("skip") || meta.path.is_ident("skip_deserializing") {
                    rule = Rule::Skip;
                } else if meta.input.peek(syn::Token![=]) {
                    let _: syn::Expr = meta.value()?.parse()?;
                } else if meta.input.peek(syn::token::Paren) {
                    let content;
                    syn::parenthesized!(content in meta.input);
                    let _: Tokens = content.parse()?;
                }
                Ok(())
            })?;
        } else if attr.path().is_ident("merge") {
            attr.parse_nested_meta(|meta| {
                for helper in ["extend", "max", "min", "later"] {
                    if meta.path.is_ident(helper) {
                        rule = Rule::Helper(helper);
                        return Ok(());
                    }
                }
                if meta.path.is_ident("skip") {
                    rule = Rule::Skip;
                } else if meta.path.is_ident("with") {
                    rule = Rule::With(meta.value()?.parse()?);
                } else {
                    return Err(meta
                        .error("expected #[merge(skip)], extend, max, min, later or with = path"));
                }
                Ok(())
            })?;
        }
    }
    Ok(rule)
}
