//! `#[derive(Module)]` for [tapegrad](https://docs.rs/tapegrad): use it through
//! `tapegrad::nn::Module`, which re-exports it beside the trait of the same name.
//!
//! For a struct with named fields the derive writes `named_parameters`, `named_buffers`,
//! `named_generators`, `train` and `is_training`: every field is visited under its name
//! (PyTorch's `state_dict` names, `fc1.weight`, `blocks.0.attn.out_proj.bias`), except fields
//! marked `#[module(skip)]`. Field attributes:
//!
//! - `#[module(skip)]`: plain data (sizes, configs, caches), not visited.
//! - `#[module(buffer)]`: state saved with the model but not trained (its parameters are listed
//!   as buffers).
//! - `#[module(rename = "name")]`: the name used instead of the field's; `""` adds no prefix
//!   (the items of a `Vec` field are then named `0`, `1`, ... as in PyTorch's `nn.Sequential`).
//! - `#[module(training)]`: the `bool` flag that `train` sets and `is_training` reports (without
//!   one, a module is in training mode when all its children are; `Param`s and `Generator`s have
//!   no mode and always count as training, so a struct of only those needs the flag for `eval()`
//!   to show).
//!
//! The element type is the struct's type parameter bounded by `Float` (`struct Net<T: Float>`),
//! `#[module(element = f64)]` on the struct, or `f32`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    Data, DeriveInput, Error, Fields, GenericParam, Ident, LitStr, Type, TypePath, WherePredicate,
    parse_macro_input,
};

/// Derives `tapegrad::nn::Module` for a struct with named fields (see the crate docs).
#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(input).unwrap_or_else(Error::into_compile_error).into()
}

/// What the attributes of one field say.
#[derive(Default)]
struct FieldAttrs {
    skip: bool,
    buffer: bool,
    training: bool,
    rename: Option<String>,
}

/// A field that is visited.
struct Visited<'a> {
    ident: &'a Ident,
    ty: &'a Type,
    name: String,
    buffer: bool,
}

fn field_attrs(field: &syn::Field) -> Result<FieldAttrs, Error> {
    let mut attrs = FieldAttrs::default();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("module")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                attrs.skip = true;
            } else if meta.path.is_ident("buffer") {
                attrs.buffer = true;
            } else if meta.path.is_ident("training") {
                attrs.training = true;
            } else if meta.path.is_ident("rename") {
                let name: LitStr = meta.value()?.parse()?;
                if name.value().contains('.') {
                    return Err(Error::new(
                        name.span(),
                        "#[module(rename = \"...\")] needs a name without dots (\"\" adds no prefix)",
                    ));
                }
                attrs.rename = Some(name.value());
            } else {
                return Err(meta.error(
                    "unknown #[module(...)] field attribute: expected `skip`, `buffer`, \
                     `training` or `rename = \"name\"`",
                ));
            }
            Ok(())
        })?;
    }
    let chosen = [attrs.skip, attrs.buffer, attrs.training]
        .iter()
        .filter(|&&b| b)
        .count();
    if chosen > 1 || (attrs.rename.is_some() && (attrs.skip || attrs.training)) {
        return Err(Error::new(
            field.span(),
            "#[module(...)]: choose one of `skip`, `buffer` and `training` (and `rename` only \
             with a visited field)",
        ));
    }
    if attrs.training && !is_bool(&field.ty) {
        return Err(Error::new(
            field.ty.span(),
            "#[module(training)] marks the `bool` flag that `train` sets and `is_training` reports",
        ));
    }
    Ok(attrs)
}

fn is_bool(ty: &Type) -> bool {
    matches!(ty, Type::Path(TypePath { qself: None, path }) if path.is_ident("bool"))
}

/// The element type: `#[module(element = ...)]`, the type parameter bounded by `Float`, or f32.
fn element_type(input: &DeriveInput) -> Result<(TokenStream2, Option<Ident>), Error> {
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("module")) {
        let mut element = None;
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("element") {
                let ty: Type = meta.value()?.parse()?;
                element = Some(quote!(#ty));
                Ok(())
            } else {
                Err(meta.error(
                    "unknown #[module(...)] struct attribute: expected `element = f32` or `element = f64`",
                ))
            }
        })?;
        if let Some(element) = element {
            return Ok((element, None));
        }
    }
    let bounded_by_float = |bounds: &syn::punctuated::Punctuated<syn::TypeParamBound, syn::Token![+]>| {
        bounds.iter().any(|b| match b {
            syn::TypeParamBound::Trait(t) => t.path.segments.last().is_some_and(|s| s.ident == "Float"),
            _ => false,
        })
    };
    for param in &input.generics.params {
        if let GenericParam::Type(tp) = param
            && bounded_by_float(&tp.bounds)
        {
            let ident = tp.ident.clone();
            return Ok((quote!(#ident), Some(ident)));
        }
    }
    if let Some(where_clause) = &input.generics.where_clause {
        for predicate in &where_clause.predicates {
            if let WherePredicate::Type(pt) = predicate
                && bounded_by_float(&pt.bounds)
                && let Type::Path(TypePath { qself: None, path }) = &pt.bounded_ty
                && let Some(ident) = path.get_ident()
            {
                return Ok((quote!(#ident), Some(ident.clone())));
            }
        }
    }
    Ok((quote!(f32), None))
}

/// Whether `ty` mentions one of `params` (so the impl needs a bound for it).
fn mentions(ty: &Type, params: &[Ident]) -> bool {
    let text = quote!(#ty).to_string();
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|word| params.iter().any(|p| p == word))
}

fn expand(input: DeriveInput) -> Result<TokenStream2, Error> {
    let name = &input.ident;
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => &named.named,
            _ => {
                return Err(Error::new(
                    input.ident.span(),
                    "#[derive(Module)] needs a struct with named fields (their names become the \
                     parameters' names)",
                ));
            }
        },
        _ => {
            return Err(Error::new(
                input.ident.span(),
                "#[derive(Module)] supports structs with named fields, not enums or unions",
            ));
        }
    };
    let (element, element_param) = element_type(&input)?;
    let module = quote!(::tapegrad::nn::Module<#element>);
    let support = quote!(::tapegrad::nn::derive_support);

    let mut visited = Vec::new();
    let mut training_flag = None;
    let mut names = std::collections::HashSet::new();
    for field in fields {
        let attrs = field_attrs(field)?;
        let ident = field.ident.as_ref().expect("named fields have names");
        if attrs.skip {
            continue;
        }
        if attrs.training {
            if training_flag.is_some() {
                return Err(Error::new(
                    field.span(),
                    "only one field can be #[module(training)]",
                ));
            }
            training_flag = Some(ident);
            continue;
        }
        let name = attrs
            .rename
            .unwrap_or_else(|| ident.to_string().trim_start_matches("r#").to_string());
        if !names.insert(name.clone()) {
            return Err(Error::new(field.span(), format!("two fields are named `{name}`")));
        }
        visited.push(Visited {
            ident,
            ty: &field.ty,
            name,
            buffer: attrs.buffer,
        });
    }

    let other_params: Vec<Ident> = input
        .generics
        .type_params()
        .map(|tp| tp.ident.clone())
        .filter(|ident| Some(ident) != element_param.as_ref())
        .collect();
    let mut generics = input.generics.clone();
    {
        let where_clause = generics.make_where_clause();
        for field in &visited {
            if mentions(field.ty, &other_params) {
                let ty = field.ty;
                where_clause
                    .predicates
                    .push(syn::parse_quote_spanned!(ty.span()=> #ty: #module));
            }
        }
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();

    // Each call is spanned at the field's type, so that a field that is not a module (nor a
    // Param, nor a container of them) is reported there.
    let call = |field: &Visited, method: TokenStream2| {
        let (ident, ty) = (field.ident, field.ty);
        quote_spanned!(ty.span()=> <#ty as #module>::#method(&self.#ident))
    };
    let params = visited.iter().filter(|f| !f.buffer).map(|f| {
        let name = &f.name;
        let list = call(f, quote!(named_parameters));
        quote!(#support::extend_prefixed(&mut out, #name, #list);)
    });
    let buffers = visited.iter().map(|f| {
        let name = &f.name;
        let own = call(f, quote!(named_buffers));
        if f.buffer {
            let as_buffers = call(f, quote!(named_parameters));
            quote! {
                #support::extend_prefixed(&mut out, #name, #as_buffers);
                #support::extend_prefixed(&mut out, #name, #own);
            }
        } else {
            quote!(#support::extend_prefixed(&mut out, #name, #own);)
        }
    });
    let generators = visited.iter().map(|f| {
        let name = &f.name;
        let list = call(f, quote!(named_generators));
        quote!(#support::extend_prefixed(&mut out, #name, #list);)
    });
    let trains = visited.iter().map(|f| {
        let (ident, ty) = (f.ident, f.ty);
        quote_spanned!(ty.span()=> <#ty as #module>::train(&mut self.#ident, mode);)
    });
    let set_flag = training_flag.map(|flag| quote!(self.#flag = mode;));
    let is_training = match training_flag {
        Some(flag) => quote!(self.#flag),
        None => {
            let each = visited.iter().map(|f| call(f, quote!(is_training)));
            quote!(true #(&& #each)*)
        }
    };
    let span = Span::call_site();
    Ok(quote_spanned! {span=>
        #[automatically_derived]
        #[allow(unused_mut, unused_variables, clippy::needless_pass_by_ref_mut)]
        impl #impl_generics #module for #name #ty_generics #where_clause {
            fn named_parameters(&self) -> ::std::vec::Vec<(::std::string::String, ::tapegrad::Param<#element>)> {
                let mut out = ::std::vec::Vec::new();
                #(#params)*
                out
            }

            fn named_buffers(&self) -> ::std::vec::Vec<(::std::string::String, ::tapegrad::Param<#element>)> {
                let mut out = ::std::vec::Vec::new();
                #(#buffers)*
                out
            }

            fn named_generators(&self) -> ::std::vec::Vec<(::std::string::String, &::tapegrad::nn::Generator)> {
                let mut out = ::std::vec::Vec::new();
                #(#generators)*
                out
            }

            fn train(&mut self, mode: bool) {
                #set_flag
                #(#trains)*
            }

            fn is_training(&self) -> bool {
                #is_training
            }
        }
    })
}
