//! kube-rs (the client the product uses) driving the emulator: reflectors, server-side apply, status, optimistic
//! concurrency, 410 Gone, restarts and request counts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use credential_e2e::{ClusterState, Emulator};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Config};
use serde_json::json;

async fn client(emu: &Emulator) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(emu.kubeconfig_path()).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    Client::try_from(config).unwrap()
}

fn api_status(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn credentials(client: &Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("k0rdent.mirantis.com", "v1beta1", "Credential");
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": value}}),
    )
    .unwrap()
}

#[tokio::test]
async fn reflector_lists_then_follows_changes() {
    let emu = Emulator::start().await.unwrap();
    let client = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("one", "1")).await.unwrap();

    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(writer, watcher(api.clone(), watcher::Config::default())).applied_objects();
    let driver = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while stream.next().await.is_some() {}
    });
    tokio::time::timeout(Duration::from_secs(5), reader.wait_until_ready()).await.unwrap().unwrap();
    assert_eq!(reader.state().len(), 1);

    api.create(&PostParams::default(), &cm("two", "2")).await.unwrap();
    api.delete("one", &DeleteParams::default()).await.unwrap();
    let seen = async {
        loop {
            let names: Vec<String> = reader.state().iter().filter_map(|c| c.metadata.name.clone()).collect();
            if names == ["two"] {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), seen).await.expect("the reflector saw the create and the delete");
    assert_eq!(emu.request_count("list", "configmaps"), 1);
    assert_eq!(emu.request_count("watch", "configmaps"), 1);
    driver.abort();
}

#[tokio::test]
async fn server_side_apply_with_field_managers() {
    let emu = Emulator::builder().crds(true).start().await.unwrap();
    let client = client(&emu).await;
    let api = credentials(&client, "default");
    let cred = json!({
        "apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential",
        "metadata": {"name": "c", "labels": {"team": "a"}},
        "spec": {"identityRef": {"apiVersion": "v1", "kind": "Secret", "name": "s"}, "description": "mine"},
    });
    let created = api.patch("c", &PatchParams::apply("distributor"), &Patch::Apply(&cred)).await.unwrap();
    assert_eq!(created.data["spec"]["description"], "mine");
    assert_eq!(emu.request_count("patch", "credentials"), 1);

    // Another manager applies only the field it cares about.
    let theirs = json!({
        "apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential",
        "metadata": {"name": "c"}, "spec": {"description": "theirs"},
    });
    let err = api_status(api.patch("c", &PatchParams::apply("intruder"), &Patch::Apply(&theirs)).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(err.message.contains(r#"conflict with "distributor""#) && err.message.contains(".spec.description"));

    let forced = api.patch("c", &PatchParams::apply("intruder").force(), &Patch::Apply(&theirs)).await.unwrap();
    assert_eq!(forced.data["spec"]["description"], "theirs");

    // The first manager stops applying its label: the label goes (nobody else set it).
    let mut fewer = cred.clone();
    fewer["metadata"].as_object_mut().unwrap().remove("labels");
    fewer["spec"].as_object_mut().unwrap().remove("description");
    let after = api.patch("c", &PatchParams::apply("distributor"), &Patch::Apply(&fewer)).await.unwrap();
    assert!(after.metadata.labels.as_ref().is_none_or(|l| !l.contains_key("team")));
    assert_eq!(after.data["spec"]["description"], "theirs", "still owned by the intruder");
}

#[tokio::test]
async fn status_subresource_and_optimistic_concurrency() {
    let emu = Emulator::builder().crds(true).start().await.unwrap();
    let client = client(&emu).await;
    let api = credentials(&client, "default");
    let cred: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential",
        "metadata": {"name": "c"}, "spec": {"description": "x"}, "status": {"ready": true},
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &cred).await.unwrap();
    assert!(created.data.get("status").is_none(), "create ignores .status");

    let patched = api
        .patch_status(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}, "spec": {"description": "y"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["status"]["ready"], true);
    assert_eq!(patched.data["spec"]["description"], "x", "a status write changes only .status");
    assert_eq!(patched.metadata.generation, Some(1));

    let stale = created.clone();
    let mut fresh = patched.clone();
    fresh.data["spec"]["description"] = json!("z");
    let replaced = api.replace("c", &PostParams::default(), &fresh).await.unwrap();
    assert_eq!(replaced.metadata.generation, Some(2));
    assert_eq!(replaced.data["status"]["ready"], true, "a main write keeps the stored status");
    let err = api_status(api.replace("c", &PostParams::default(), &stale).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(err.message.contains("the object has been modified"), "{}", err.message);

    let err = api_status(api.get("nope").await.unwrap_err());
    assert_eq!(err.code, 404);
    assert_eq!(err.message, r#"credentials.k0rdent.mirantis.com "nope" not found"#);
}

#[tokio::test]
async fn watch_resumes_from_history_and_gets_410_after_compaction() {
    let emu = Emulator::start().await.unwrap();
    let client = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let first = api.create(&PostParams::default(), &cm("a", "1")).await.unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();
    api.create(&PostParams::default(), &cm("b", "1")).await.unwrap();

    let wp = WatchParams::default().timeout(2);
    let mut events = api.watch(&wp, &rv).await.unwrap().boxed();
    match tokio::time::timeout(Duration::from_secs(3), events.next()).await.unwrap().unwrap().unwrap() {
        WatchEvent::Added(c) => assert_eq!(c.metadata.name.as_deref(), Some("b")),
        other => panic!("expected ADDED b, got {other:?}"),
    }

    emu.compact();
    let err = match api.watch(&wp, &rv).await {
        Err(e) => api_status(e),
        Ok(stream) => api_status(stream.boxed().next().await.unwrap().unwrap_err()),
    };
    assert_eq!((err.code, err.reason.as_str()), (410, "Expired"));

    // Bookmarks arrive on an open watch when asked for.
    let wp = WatchParams::default().timeout(3);
    assert!(wp.bookmarks);
    let now = emu.resource_version().to_string();
    let mut events = api.watch(&wp, &now).await.unwrap().boxed();
    match tokio::time::timeout(Duration::from_secs(3), events.next()).await.unwrap().unwrap().unwrap() {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, now),
        other => panic!("expected a bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn stop_and_restart_keeps_the_data_and_cuts_clients_off() {
    let emu = Emulator::start().await.unwrap();
    let port = emu.port();
    let client = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &cm("kept", "1")).await.unwrap();

    let state: ClusterState = emu.stop().await;
    let down = tokio::time::timeout(Duration::from_secs(5), api.get("kept")).await.unwrap();
    assert!(down.is_err(), "the cluster is unreachable while stopped");

    let emu = Emulator::start_on(port, state).await.unwrap();
    assert_eq!(api.get("kept").await.unwrap().data.unwrap()["k"], "1");
    // Pause/resume on the same emulator.
    let mut emu = emu;
    emu.pause().await;
    assert!(api.list(&ListParams::default()).await.is_err());
    emu.resume().await.unwrap();
    assert_eq!(api.list(&ListParams::default()).await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn selectors_and_request_counts() {
    let emu = Emulator::builder()
        .seed_yaml(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web, labels: {tier: web}}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {name: db, labels: {tier: db}}\n",
        )
        .start()
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(&emu).await, "default");
    let names = |l: kube::api::ObjectList<ConfigMap>| -> Vec<String> {
        l.items.into_iter().filter_map(|c| c.metadata.name).collect()
    };
    assert_eq!(names(api.list(&ListParams::default().labels("tier!=web")).await.unwrap()), ["db"]);
    assert_eq!(names(api.list(&ListParams::default().fields("metadata.name=web")).await.unwrap()), ["web"]);
    let err = api_status(api.list(&ListParams::default().fields("data.k=v")).await.unwrap_err());
    assert_eq!(err.code, 400);
    assert_eq!(emu.request_count("list", "configmaps"), 3);
    assert_eq!(emu.request_count("get", "configmaps"), 0);
    emu.reset_request_counts();
    api.get("web").await.unwrap();
    assert_eq!(emu.request_counts().values().sum::<u64>(), 1);
}

#[tokio::test]
async fn generate_name_json_patch_collections_and_builtin_kinds() {
    use k8s_openapi::api::coordination::v1::Lease;
    let emu = Emulator::start().await.unwrap();
    let client = client(&emu).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let generated: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "gen-", "labels": {"batch": "x"}}})).unwrap();
    let a = api.create(&PostParams::default(), &generated).await.unwrap();
    let b = api.create(&PostParams::default(), &generated).await.unwrap();
    let (a, b) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
    assert!(a.starts_with("gen-") && a.len() == 9 && a != b, "{a} {b}");

    let ops =
        json!([{"op": "add", "path": "/data", "value": {"x": "1"}}, {"op": "test", "path": "/data/x", "value": "1"}]);
    let patched =
        api.patch(&a, &PatchParams::default(), &Patch::Json::<()>(serde_json::from_value(ops).unwrap())).await;
    assert_eq!(patched.unwrap().data.unwrap()["x"], "1");
    let failing = json!([{"op": "test", "path": "/data/x", "value": "2"}]);
    let err = api_status(
        api.patch(&a, &PatchParams::default(), &Patch::Json::<()>(serde_json::from_value(failing).unwrap()))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);

    api.delete_collection(&DeleteParams::default(), &ListParams::default().labels("batch=x")).await.unwrap();
    assert!(emu.list("v1", "ConfigMap", Some("default")).is_empty());

    let leases: Api<Lease> = Api::namespaced(client, "kube-system");
    let lease: Lease =
        serde_json::from_value(json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "pod-a"}})).unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut held = leases.get("leader").await.unwrap();
    held.spec.as_mut().unwrap().holder_identity = Some("pod-b".into());
    leases.replace("leader", &PostParams::default(), &held).await.unwrap();
    let err = api_status(leases.replace("leader", &PostParams::default(), &held).await.unwrap_err());
    assert_eq!(err.code, 409, "the second writer with the same resourceVersion loses");
    assert_eq!(emu.request_count("update", "leases"), 2);
}

#[tokio::test]
async fn large_seeds_and_list_documents() {
    let mut yaml = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for i in 0..3 {
        yaml.push_str(&format!("- apiVersion: v1\n  kind: Secret\n  metadata: {{name: s{i}, namespace: listed}}\n"));
    }
    for i in 0..2000 {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}, namespace: ns{}}}\n",
            i % 10
        ));
    }
    let emu = Emulator::start().await.unwrap();
    assert_eq!(emu.seed_yaml(&yaml).unwrap(), 2003);
    assert_eq!(emu.list("v1", "secrets", Some("listed")).len(), 3);
    assert_eq!(emu.list("v1", "ConfigMap", None).len(), 2000);
    assert!(emu.get("v1", "Namespace", None, "ns9").is_some(), "seeding creates missing namespaces");
    let err = emu.seed_yaml("apiVersion: example.com/v1\nkind: Unknown\nmetadata: {name: x}\n").unwrap_err();
    assert!(
        err.to_string().contains("example.com/v1 Unknown x") && err.to_string().contains("CustomResourceDefinition"),
        "{err}"
    );
    let api: Api<ConfigMap> = Api::all(client(&emu).await);
    assert_eq!(api.list(&ListParams::default()).await.unwrap().items.len(), 2000);
}

#[tokio::test]
async fn filtered_watch_sees_objects_enter_and_leave_the_selection() {
    let emu = Emulator::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(&emu).await, "default");
    let rv = emu.resource_version().to_string();
    let mut events = api
        .watch(&WatchParams::default().labels("watched=yes").timeout(5).disable_bookmarks(), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("c", "1")).await.unwrap();
    let label = |v: &str| Patch::Merge(json!({"metadata": {"labels": {"watched": v}}}));
    api.patch("c", &PatchParams::default(), &label("yes")).await.unwrap();
    api.patch("c", &PatchParams::default(), &label("no")).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        match tokio::time::timeout(Duration::from_secs(3), events.next()).await.unwrap().unwrap().unwrap() {
            WatchEvent::Added(_) => seen.push("ADDED"),
            WatchEvent::Deleted(_) => seen.push("DELETED"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["ADDED", "DELETED"]);
}
