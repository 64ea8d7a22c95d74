//! TLS and authentication: a registry with a test CA, htpasswd basic auth,
//! and token auth against a token server the test runs.

#[path = "fetch_support/mod.rs"]
mod support;

use support::*;

fn small_image() -> ImageSpec {
    ImageSpec::new(vec![Layer {
        entries: vec![file("hello", "world")],
        comp: Comp::Gzip,
    }])
}

#[test]
fn tls_with_ca() {
    let Some(reg) = Registry::start(RegistryConfig {
        tls: true,
        ..Default::default()
    }) else {
        return;
    };
    let work = TempDir::new("tls");
    write_layout(&work.join("src"), "v1", &[small_image()]);
    push(
        &work.join("src"),
        "v1",
        &format!("{}/tls:v1", reg.host()),
        &[],
    );
    let r = format!("{}/tls:v1", reg.host());
    let store = work.s("store");
    let ca = reg.ca.as_ref().unwrap().to_string_lossy().into_owned();
    fails(fetch(&["pull", "-q", "--store", &store, &r]), "certificate");
    ok(fetch(&[
        "pull",
        "-q",
        "--store",
        &store,
        "--ca",
        &ca,
        "--rootfs",
        &work.s("a"),
        &r,
    ]));
    assert_eq!(read(&work.join("a/hello")), "world");
    ok(fetch(&[
        "pull",
        "-q",
        "--store",
        &work.s("store2"),
        "--tls-verify=false",
        &r,
    ]));
    ok(fetch(&["inspect", "--ca", &ca, &r]));
    fails(
        fetch(&[
            "pull",
            "-q",
            "--store",
            &store,
            "--ca",
            "/nonexistent/ca.pem",
            &r,
        ]),
        "read CA file /nonexistent/ca.pem",
    );
}

#[test]
fn htpasswd_basic_auth() {
    let Some(reg) = Registry::start(RegistryConfig {
        tls: true,
        htpasswd: Some(("alice".into(), "s3cret".into())),
        ..Default::default()
    }) else {
        return;
    };
    let work = TempDir::new("basic-auth");
    write_layout(&work.join("src"), "v1", &[small_image()]);
    push(
        &work.join("src"),
        "v1",
        &format!("{}/auth:v1", reg.host()),
        &["--dest-creds", "alice:s3cret"],
    );
    let r = format!("{}/auth:v1", reg.host());
    let store = work.s("store");
    let ca = reg.ca.as_ref().unwrap().to_string_lossy().into_owned();
    fails(
        fetch(&["pull", "-q", "--store", &store, "--ca", &ca, &r]),
        "basic auth",
    );
    fails(
        fetch(&[
            "pull",
            "-q",
            "--store",
            &store,
            "--ca",
            &ca,
            "--user",
            "alice:wrong",
            &r,
        ]),
        "credentials rejected",
    );
    ok(fetch(&[
        "pull",
        "-q",
        "--store",
        &store,
        "--ca",
        &ca,
        "--user",
        "alice:s3cret",
        "--rootfs",
        &work.s("a"),
        &r,
    ]));
    assert_eq!(read(&work.join("a/hello")), "world");
    // The same credentials from a docker config.json.
    let auth = skiff::registry::auth::base64_encode(b"alice:s3cret");
    std::fs::write(
        work.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    ok(fetch(&[
        "pull",
        "-q",
        "--store",
        &work.s("store2"),
        "--ca",
        &ca,
        "--auth-file",
        &work.s("config.json"),
        &r,
    ]));
    fails(
        fetch(&[
            "pull",
            "-q",
            "--store",
            &store,
            "--auth-file",
            &work.s("none.json"),
            &r,
        ]),
        "auth file",
    );
    // The default: ~/.docker/config.json.
    std::fs::create_dir_all(work.join("home/.docker")).unwrap();
    std::fs::copy(
        work.join("config.json"),
        work.join("home/.docker/config.json"),
    )
    .unwrap();
    let home = work.s("home");
    ok(fetch_env(
        &["pull", "-q", "--store", &work.s("store3"), "--ca", &ca, &r],
        &[("HOME", &home)],
    ));
}

#[test]
fn token_auth_anonymous_and_with_credentials() {
    // Anonymous tokens.
    let tokens = TokenServer::start(None);
    let Some(reg) = Registry::start(tokens.registry_config()) else {
        return;
    };
    let work = TempDir::new("token");
    write_layout(&work.join("src"), "v1", &[small_image()]);
    push(
        &work.join("src"),
        "v1",
        &format!("{}/tok:v1", reg.host()),
        &[],
    );
    let r = format!("{}/tok:v1", reg.host());
    ok(fetch(&[
        "pull",
        "--plain-http",
        "-q",
        "--store",
        &work.s("store"),
        "--rootfs",
        &work.s("a"),
        &r,
    ]));
    assert_eq!(read(&work.join("a/hello")), "world");
    drop(reg);
    drop(tokens);

    // Tokens only for bob.
    let tokens = TokenServer::start(Some(("bob".into(), "pw".into())));
    let Some(reg) = Registry::start(tokens.registry_config()) else {
        return;
    };
    push(
        &work.join("src"),
        "v1",
        &format!("{}/tok:v1", reg.host()),
        &["--dest-creds", "bob:pw"],
    );
    let r = format!("{}/tok:v1", reg.host());
    fails(
        fetch(&["pull", "--plain-http", "-q", "--store", &work.s("s2"), &r]),
        "get token",
    );
    ok(fetch(&[
        "pull",
        "--plain-http",
        "-q",
        "--store",
        &work.s("s3"),
        "--user",
        "bob:pw",
        "--rootfs",
        &work.s("b"),
        &r,
    ]));
    assert_eq!(read(&work.join("b/hello")), "world");
}

#[test]
fn blob_redirect_to_another_host_drops_authorization() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let work = TempDir::new("redirect");
    write_layout(&work.join("src"), "v1", &[small_image()]);
    push(
        &work.join("src"),
        "v1",
        &format!("{}/redir:v1", reg.host()),
        &[],
    );
    let rport = reg.port;
    // The "storage" host: serves blobs, records what it was sent.
    let storage = Front::start(move |_| Action::Forward(rport));
    let sport = storage.port;
    // The registry front: wants basic auth, redirects blobs to storage.
    let want = format!(
        "Basic {}",
        skiff::registry::auth::base64_encode(b"carol:pw")
    );
    let front = Front::start(move |req| {
        if req.header("authorization") != Some(want.as_str()) {
            return Action::Respond(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"front\"\r\nContent-Length: 0\r\n\r\n".into(),
            );
        }
        let path = req
            .line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        if path.contains("/blobs/") {
            return Action::Respond(format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://localhost:{sport}{path}\r\nContent-Length: 0\r\n\r\n"
            ));
        }
        Action::Forward(rport)
    });
    let r = format!("127.0.0.1:{}/redir:v1", front.port);
    ok(fetch(&[
        "pull",
        "--plain-http",
        "-q",
        "--store",
        &work.s("store"),
        "--user",
        "carol:pw",
        "--rootfs",
        &work.s("a"),
        &r,
    ]));
    assert_eq!(read(&work.join("a/hello")), "world");
    let seen = storage.seen();
    assert!(
        seen.len() >= 2,
        "config and layer came from storage: {seen:?}"
    );
    assert!(
        seen.iter().all(|s| s.header("authorization").is_none()),
        "authorization leaked: {seen:?}"
    );
    assert!(front
        .seen()
        .iter()
        .any(|s| s.header("authorization").is_some()));
}
