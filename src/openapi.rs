//! The API contract: generated from the handlers' annotations, so a route cannot
//! be served without being described. `openapi.yaml` at the repository root is
//! this output, committed; a test fails when they drift apart.

use actix_router::ResourceDef;
use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::ALLOW;
use actix_web::middleware::Next;
use actix_web::{App, HttpRequest, web};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::PathItem;
use utoipa::openapi::schema::{Array, ArrayItems, Object, Schema};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::{AppExt, UtoipaApp, scope};

use crate::error::{ApiError, ErrorCode, PROBLEM_JSON};
use crate::validation::TextRule;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "jifen API",
        description = "积分 jifen: the points-and-rewards ledger for neighbourhood communities (社区积分制).\n\n\
Errors are `application/problem+json` (RFC 9457) with a stable machine-readable `code`. \
Lists are paginated with `limit` (1 to 200, default 50) and the opaque `cursor` from the previous page's `next_cursor`. \
Times are RFC 3339 in UTC. \
Integers (points, quantities, limits) are written without a fraction or exponent: `20`, not `20.0` or `2e1`; \
a body that breaks this is refused with 400 `invalid_body`, a query with 400 `validation_failed`. \
Authenticate with `Authorization: Bearer <access_token>` from `/api/v1/auth/login`.\n\n\
Roles (`admin`, `staff`, `auditor`, `resident`) are granted on a unit and hold on every unit below it: \
staff of a street are staff of each of its communities. Each operation's description ends with who may call it (`Role: ...`), \
and its `x-required-roles` lists the roles of which the caller needs one on the unit concerned, as the description names it (empty: no role needed; \
without `security`, no token either). A unit outside the caller's roles answers 404, one they see without the role 403."
    ),
    modifiers(&BearerSecurity),
    components(schemas(crate::error::Problem, crate::error::ErrorCode)),
    tags(
        (name = "auth", description = "Sign-in, token refresh, registration"),
        (name = "me", description = "The caller's own account"),
        (name = "units", description = "District → street → community"),
        (name = "members", description = "Users' roles on units"),
        (name = "rules", description = "A community's point rules (积分细则)"),
        (name = "activities", description = "Activities with sign-up, check-in and completion"),
        (name = "rewards", description = "The points shop (积分超市): its catalogue"),
        (name = "redemptions", description = "Orders in the points shop: hold, hand over, cancel"),
        (name = "claims", description = "Residents' claims for good deeds, reviewed by staff"),
        (name = "ledger", description = "Points: awards, deductions, reversals, balances, the hash chain"),
        (name = "exports", description = "CSV files for auditors and staff: ledgers, orders, participation. \
They are streamed: should the server fail once a file has begun, it closes the connection before the end of the body, \
so a download that did not end properly is incomplete and must not be used."),
        (name = "reports", description = "Leaderboards (评比) and dashboard statistics"),
        (name = "audit", description = "The audit log, for auditors and admins"),
        (name = "system", description = "Health and this description"),
    )
)]
struct ApiDoc;

struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::builder().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// Answers any operation can give, described once as shared responses: every
/// JSON body can be too large or of the wrong type, and any request can meet a
/// busy database.
struct CommonProblems;

fn problem_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, Content::new(Some(Ref::from_schema_name("Problem"))))
        .build()
}

impl Modify for CommonProblems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let shared = [
            ("PayloadTooLarge", "413", "`payload_too_large`: the body is over 64 KiB", true),
            ("UnsupportedMediaType", "415", "`unsupported_media_type`: the body is not `application/json`", true),
            (
                "ServiceUnavailable",
                "503",
                "`service_unavailable`: the database is busy or down; retry after `Retry-After` seconds",
                false,
            ),
            (
                "InternalError",
                "500",
                "`internal_error`: a bug; the details are in the server log under the request id",
                false,
            ),
        ];
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, _, description, _) in shared {
            components.responses.insert(name.to_owned(), RefOr::T(problem_response(description)));
        }
        for item in openapi.paths.paths.values_mut() {
            for operation in
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
            {
                let has_body = operation.request_body.is_some();
                for (name, status, _, body_only) in shared {
                    if !body_only || has_body {
                        operation
                            .responses
                            .responses
                            .entry(status.to_owned())
                            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                    }
                }
            }
        }
    }
}

/// A page's example is one of its item's: the items' examples are written once,
/// on their own schemas, and every list shows one without repeating it.
struct PageExamples;

impl Modify for PageExamples {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for (name, schema) in components.schemas.iter_mut() {
            let RefOr::T(Schema::Object(page)) = schema else {
                continue;
            };
            if !name.starts_with("Page_") || page.example.is_some() {
                continue;
            }
            let item_example = match page.properties.get("items") {
                Some(RefOr::T(Schema::Array(Array { items: ArrayItems::RefOrSchema(item), .. }))) => match &**item {
                    RefOr::T(Schema::Object(item)) => item.example.clone(),
                    _ => None,
                },
                _ => None,
            };
            if let Some(item_example) = item_example {
                page.example = Some(serde_json::json!({"items": [item_example], "next_cursor": null}));
            }
        }
    }
}

/// Text fields are marked `x-text` (their limits, from the constants the checks
/// use) and get the pattern that accepts exactly what the server accepts.
struct TextPatterns;

impl TextPatterns {
    fn rule(extensions: Option<&Extensions>) -> Option<TextRule> {
        // A mark that does not parse is left without a pattern, which the contract tests catch.
        serde_json::from_value(extensions?.get("x-text")?.clone()).ok()
    }

    fn apply(object: &mut Object, rule: &TextRule) {
        object.pattern = Some(rule.pattern());
        object.min_length = (!rule.blank_is_absent).then_some(1);
    }

    fn visit(schema: &mut RefOr<Schema>) {
        let RefOr::T(schema) = schema else {
            return;
        };
        match schema {
            Schema::Object(object) => {
                if let Some(rule) = Self::rule(object.extensions.as_ref()) {
                    Self::apply(object, &rule);
                }
                object.properties.values_mut().for_each(Self::visit);
            }
            Schema::Array(array) => {
                let rule = Self::rule(array.extensions.as_ref());
                if let ArrayItems::RefOrSchema(items) = &mut array.items {
                    // A mark on a list of texts is for each of them.
                    if let (Some(rule), RefOr::T(Schema::Object(item))) = (&rule, items.as_mut()) {
                        Self::apply(item, rule);
                    }
                    Self::visit(items);
                }
            }
            Schema::OneOf(one_of) => one_of.items.iter_mut().for_each(Self::visit),
            Schema::AllOf(all_of) => all_of.items.iter_mut().for_each(Self::visit),
            Schema::AnyOf(any_of) => any_of.items.iter_mut().for_each(Self::visit),
            _ => {}
        }
    }
}

impl Modify for TextPatterns {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.schemas.values_mut().for_each(Self::visit);
        }
    }
}

/// Registers every route of the service; used both to serve and to describe.
pub fn register<T>(app: UtoipaApp<T>) -> UtoipaApp<T>
where
    T: actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Error = actix_web::Error,
            InitError = (),
        >,
{
    app.configure(crate::system::routes).service(
        scope::scope("/api/v1")
            .configure(crate::auth::routes)
            .configure(crate::units::routes)
            .configure(crate::ledger::routes)
            .configure(crate::rules::routes)
            .configure(crate::claims::routes)
            .configure(crate::activities::routes)
            .configure(crate::rewards::routes)
            .configure(crate::redemptions::routes)
            .configure(crate::exports::routes)
            .configure(crate::reports::routes)
            .configure(crate::audit::routes),
    )
}

pub fn spec() -> utoipa::openapi::OpenApi {
    let (_, mut spec) = register(App::new().into_utoipa_app().openapi(ApiDoc::openapi())).split_for_parts();
    // After the routes are in: the shared answers go on every operation, and the
    // pages their generic schemas bring along get their examples.
    CommonProblems.modify(&mut spec);
    PageExamples.modify(&mut spec);
    TextPatterns.modify(&mut spec);
    spec
}

pub fn spec_yaml() -> anyhow::Result<String> {
    Ok(spec().to_yaml()?)
}

/// The documented paths, their methods and operation ids: to tell "no such
/// resource" (404) from "no such method here" (405) for requests no route
/// matched, and to name what a request does (the audit log's `action`).
pub struct RouteTable {
    routes: Vec<(ResourceDef, Vec<(Method, String)>)>,
}

/// A request resolved against the contract.
pub struct ResolvedRoute<'a> {
    pub operation_id: &'a str,
    pub pattern: &'a str,
    /// The path parameters, in path order.
    pub params: Vec<(String, String)>,
}

/// Serves only what the contract documents: a route registered without its
/// description (or a method it does not list) answers as if it did not exist.
pub async fn only_documented(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if let (Some(pattern), Some(routes)) = (req.match_pattern(), req.app_data::<web::Data<RouteTable>>()) {
        let documented = routes.routes.iter().any(|(def, methods)| {
            def.pattern() == Some(pattern.as_str()) && methods.iter().any(|(m, _)| m == req.method())
        });
        if !documented {
            let error = unmatched_error(req.request(), routes);
            return Ok(req.error_response(error));
        }
    }
    next.call(req).await
}

fn operations_of(item: &PathItem) -> Vec<(Method, String)> {
    [
        (&item.get, Method::GET),
        (&item.put, Method::PUT),
        (&item.post, Method::POST),
        (&item.delete, Method::DELETE),
        (&item.patch, Method::PATCH),
    ]
    .into_iter()
    .filter_map(|(operation, method)| {
        operation.as_ref().map(|operation| (method, operation.operation_id.clone().unwrap_or_default()))
    })
    .collect()
}

impl RouteTable {
    pub fn new(spec: &utoipa::openapi::OpenApi) -> Self {
        let routes = spec
            .paths
            .paths
            .iter()
            .map(|(path, item)| (ResourceDef::new(path.as_str()), operations_of(item)))
            .collect();
        RouteTable { routes }
    }

    pub fn methods_for(&self, path: &str) -> Option<Vec<Method>> {
        self.routes
            .iter()
            .find(|(def, _)| def.is_match(path))
            .map(|(_, operations)| operations.iter().map(|(method, _)| method.clone()).collect())
    }

    /// The documented operation serving `method` on `path`, if any.
    pub fn resolve(&self, method: &Method, path: &str) -> Option<ResolvedRoute<'_>> {
        self.routes.iter().find_map(|(def, operations)| {
            let (_, operation_id) = operations.iter().find(|(m, _)| m == method)?;
            let mut captured = actix_router::Path::new(path);
            if !def.capture_match_info(&mut captured) {
                return None;
            }
            Some(ResolvedRoute {
                operation_id,
                pattern: def.pattern()?,
                params: captured.iter().map(|(name, value)| (name.to_owned(), value.to_owned())).collect(),
            })
        })
    }
}

/// The answer for requests no route matched.
pub async fn unmatched(req: HttpRequest, routes: web::Data<RouteTable>) -> Result<actix_web::HttpResponse, ApiError> {
    Err(unmatched_error(&req, &routes))
}

fn unmatched_error(req: &HttpRequest, routes: &RouteTable) -> ApiError {
    match routes.methods_for(req.path()) {
        Some(methods) => {
            let allow = methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
            ApiError::new(ErrorCode::MethodNotAllowed, format!("{} is not supported here; use {allow}", req.method()))
                .with_header(ALLOW, allow)
        }
        None => ApiError::new(ErrorCode::NotFound, format!("no resource at {}", req.path())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(spec: &serde_json::Value, schema: &str, property: &str) -> regex::Regex {
        let pointer = format!("/components/schemas/{schema}/properties/{property}/pattern");
        let pattern = spec.pointer(&pointer).and_then(|p| p.as_str()).unwrap_or_else(|| panic!("no {pointer}"));
        regex::Regex::new(pattern).unwrap()
    }

    /// A pattern can only approach the checks of usernames (Unicode properties after
    /// lower-casing) and time zones (the names chrono-tz knows): the contract's are at
    /// least honest, so what they reject the server rejects, and each time zone the
    /// server knows matches.
    #[test]
    fn username_and_timezone_patterns_are_honest() {
        let spec = serde_json::to_value(spec()).unwrap();
        for (schema, property) in [("RegisterRequest", "username"), ("NewUser", "username")] {
            let pattern = pattern(&spec, schema, property);
            assert_eq!(pattern.as_str(), crate::validation::USERNAME_PATTERN);
            for sample in ["13800138000", "zhang.guilan", "张桂兰", "Ålesund_1", "a@b.cn", "ab-c", "x²y"] {
                assert!(pattern.is_match(sample), "{sample:?} in {schema}.{property}");
                assert!(crate::validation::username(sample).is_ok(), "{sample:?}");
            }
            for sample in ["ab", "a b", "a+b", "a/b", "®abc", "", &"a".repeat(65)] {
                assert!(!pattern.is_match(sample), "{sample:?} in {schema}.{property}");
                assert!(crate::validation::username(sample).is_err(), "{sample:?}");
            }
        }
        for schema in ["CreateUnitRequest", "UpdateUnitRequest"] {
            let pattern = pattern(&spec, schema, "timezone");
            assert_eq!(pattern.as_str(), crate::validation::TIMEZONE_PATTERN);
            for timezone in chrono_tz::TZ_VARIANTS {
                assert!(pattern.is_match(timezone.name()), "{} in {schema}.timezone", timezone.name());
                assert!(timezone.name().len() <= 64);
            }
            for sample in ["", "/", "Asia/", "Asia//Shanghai", "Asia Shanghai", "1Asia"] {
                assert!(!pattern.is_match(sample), "{sample:?} in {schema}.timezone");
            }
        }
    }
}
