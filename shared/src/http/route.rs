use super::{ApiError, Request};

/// The operations of the contract, each served by one function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    CreateUser,
    ListUsers,
    GetUser { id: &'a str },
    UpdateUser { id: &'a str },
    DeleteUser { id: &'a str },
}

/// Resolves the request's method and path: `404` for a path the API does not have, `405`
/// (with `allow`) for a known path with another method.
pub fn route(request: &Request) -> Result<Resource<'_>, ApiError> {
    let method = &request.request_context.http.method;
    let segments = path(request)
        .strip_prefix("/users")
        .ok_or(ApiError::RouteNotFound)?;
    if segments.is_empty() {
        return match method.as_str() {
            "POST" => Ok(Resource::CreateUser),
            "GET" => Ok(Resource::ListUsers),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
        };
    }
    let id = segments.strip_prefix('/').ok_or(ApiError::RouteNotFound)?;
    if id.is_empty() || id.contains('/') {
        return Err(ApiError::RouteNotFound);
    }
    match method.as_str() {
        "GET" => Ok(Resource::GetUser { id }),
        "PATCH" => Ok(Resource::UpdateUser { id }),
        "DELETE" => Ok(Resource::DeleteUser { id }),
        _ => Err(ApiError::MethodNotAllowed {
            allow: "DELETE, GET, PATCH",
        }),
    }
}

/// The path as the client sent it, without the stage prefix of a named stage.
fn path(request: &Request) -> &str {
    let path = request
        .raw_path
        .as_deref()
        .or(request.request_context.http.path.as_deref())
        .unwrap_or_default();
    match request.request_context.stage.as_deref() {
        Some(stage) if stage != "$default" => path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(stage))
            .filter(|rest| rest.starts_with('/'))
            .unwrap_or(path),
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http::Method;
    use proptest::prelude::*;

    fn request(method: Method, path: &str, stage: &str) -> Request {
        let mut request = Request {
            raw_path: Some(path.to_owned()),
            ..Request::default()
        };
        request.request_context.http.method = method.as_str().to_owned();
        request.request_context.stage = Some(stage.to_owned());
        request
    }

    fn resolve(method: Method, path: &str) -> Result<String, String> {
        route(&request(method, path, "$default"))
            .map(|r| format!("{r:?}"))
            .map_err(|e| format!("{} {}", e.status(), e.code()))
    }

    #[test]
    fn routes_the_five_operations() {
        assert_eq!(resolve(Method::POST, "/users"), Ok("CreateUser".into()));
        assert_eq!(resolve(Method::GET, "/users"), Ok("ListUsers".into()));
        assert_eq!(
            resolve(Method::GET, "/users/abc"),
            Ok("GetUser { id: \"abc\" }".into())
        );
        assert_eq!(
            resolve(Method::PATCH, "/users/abc"),
            Ok("UpdateUser { id: \"abc\" }".into())
        );
        assert_eq!(
            resolve(Method::DELETE, "/users/abc"),
            Ok("DeleteUser { id: \"abc\" }".into())
        );
    }

    #[test]
    fn refuses_other_methods_and_paths() {
        assert_eq!(
            resolve(Method::DELETE, "/users"),
            Err("405 method_not_allowed".into())
        );
        assert_eq!(
            resolve(Method::POST, "/users/abc"),
            Err("405 method_not_allowed".into())
        );
        assert_eq!(
            resolve(Method::PUT, "/users/abc"),
            Err("405 method_not_allowed".into())
        );
        assert_eq!(
            resolve(Method::PATCH, "/users"),
            Err("405 method_not_allowed".into())
        );
        for path in [
            "/",
            "",
            "/user",
            "/usersx",
            "/users/",
            "/users/a/b",
            "/users//",
            "/admin/users",
        ] {
            assert_eq!(
                resolve(Method::GET, path),
                Err("404 not_found".into()),
                "{path}"
            );
        }
    }

    #[test]
    fn strips_a_named_stage() {
        let staged = request(Method::GET, "/prod/users", "prod");
        assert_eq!(route(&staged).ok(), Some(Resource::ListUsers));
        let unstaged = request(Method::GET, "/users", "prod");
        assert_eq!(route(&unstaged).ok(), Some(Resource::ListUsers));
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn an_id_is_one_nonempty_segment(
            path in prop_oneof![any::<String>(), "/users(/[a-z./%]{0,4}){0,3}"],
        ) {
            if let Ok(Resource::GetUser { id }) = route(&request(Method::GET, &path, "$default")) {
                prop_assert!(!id.is_empty() && !id.contains('/'), "{:?}", path);
                prop_assert_eq!(format!("/users/{id}"), path);
            }
        }
    }
}
