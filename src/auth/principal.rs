//! Who is calling, and what their roles allow. Read from the database on every
//! request, so a revoked or suspended grant takes effect at once.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};

use crate::audit::Trail;
use crate::auth::model::User;
use crate::error::ApiError;
use crate::startup::AppState;
use crate::units::model::{Membership, MembershipStatus, Roles, Unit};

#[derive(Clone)]
pub struct Principal {
    pub user: User,
    pub memberships: Vec<(Membership, Unit)>,
}

impl Principal {
    fn active_memberships(&self) -> impl Iterator<Item = &(Membership, Unit)> {
        self.memberships.iter().filter(|(membership, _)| membership.status() == MembershipStatus::Active)
    }

    /// A unit the caller is a member of (active or not), as read with their memberships.
    pub fn unit(&self, unit_id: &str) -> Option<&Unit> {
        self.memberships.iter().map(|(_, unit)| unit).find(|unit| unit.id == unit_id)
    }

    /// The caller's membership of `unit` itself, active or not.
    pub fn membership_in(&self, unit_id: &str) -> Option<&Membership> {
        self.memberships.iter().map(|(membership, _)| membership).find(|membership| membership.unit_id == unit_id)
    }

    /// The roles the caller holds on `unit`: those of active memberships on it or on any unit above it.
    pub fn roles_on(&self, unit: &Unit) -> Roles {
        self.active_memberships()
            .filter(|(_, granted_on)| unit.is_within(&granted_on.path))
            .fold(Roles::default(), |roles, (membership, _)| roles.union(membership.roles()))
    }

    /// The paths of the units whose subtrees the caller may see.
    pub fn visible_roots(&self) -> Vec<String> {
        self.active_memberships().map(|(_, unit)| unit.path.clone()).collect()
    }

    /// The units on which the caller holds a role that satisfies `allowed` (their subtrees included).
    pub fn units_where(&self, allowed: impl Fn(Roles) -> bool) -> impl Iterator<Item = &Unit> {
        self.active_memberships().filter(move |(membership, _)| allowed(membership.roles())).map(|(_, unit)| unit)
    }

    /// Checks that the caller may do something on `unit`: a unit outside the
    /// caller's reach answers 404 (its existence is not revealed); one they can
    /// see but lack the role for answers 403.
    pub fn authorize(&self, unit: &Unit, allowed: impl Fn(Roles) -> bool, action: &str) -> Result<Roles, ApiError> {
        let roles = self.roles_on(unit);
        if roles.is_empty() {
            return Err(ApiError::not_found("unit"));
        }
        if !allowed(roles) {
            return Err(ApiError::forbidden(format!("your roles on this unit do not allow you to {action}")));
        }
        Ok(roles)
    }
}

fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req);
        let writes = ![Method::GET, Method::HEAD, Method::OPTIONS].contains(req.method());
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            let token =
                token.ok_or_else(|| ApiError::unauthorized("send an access token: Authorization: Bearer <token>"))?;
            let claims = state.tokens.verify_access(&token, state.clock.now())?;
            let principal = state
                .db
                .read(move |conn| {
                    // Logout, a password change or a stolen refresh token revoke the session, and with it its access tokens.
                    let session = User::of_live_session(conn, &claims.sub, &claims.jti)?;
                    Ok(session.map(|(user, memberships)| Principal { user, memberships }))
                })
                .await?;
            let principal =
                principal.ok_or_else(|| ApiError::unauthorized("the access token is invalid or expired"))?;
            Trail::current().identify(&principal);
            if writes {
                state.limiters.check_write(&principal.user.id)?;
            }
            Ok(principal)
        })
    }
}
