use keyward_core::{CredentialKind, InstanceId, InstanceStatus, ProjectId, Region, Timestamp};
use keyward_store::{
    Creator, CredentialFilter, NewInstance, NewProject, Page, ProjectChanges, ProjectDeletion,
    RevokedToken, Store, StoreError,
};

use crate::{name, new_credential, organization, scope_names};

pub(crate) fn project(
    organization: keyward_core::OrganizationId,
    project_name: &str,
) -> NewProject {
    NewProject {
        id: ProjectId::generate(),
        organization_id: organization,
        name: name(project_name),
        description: "about it".into(),
        created_at: Timestamp::now(),
    }
}

pub(crate) fn instance(
    organization: keyward_core::OrganizationId,
    project: ProjectId,
    instance_name: &str,
) -> NewInstance {
    NewInstance {
        id: InstanceId::generate(),
        organization_id: organization,
        project_id: project,
        name: name(instance_name),
        region: Region::parse("eu-west-1").unwrap(),
        status: InstanceStatus::Running,
        created_at: Timestamp::now(),
    }
}

pub async fn project_names_are_unique_among_live_projects(store: &dyn Store) {
    let (org, _) = organization(store, "Acme").await;
    let (other, _) = organization(store, "Globex").await;
    let web = store
        .insert_project(&keyward_store::AuditContext::SYSTEM, project(org, "Web"))
        .await
        .unwrap();
    assert_eq!(web.description, "about it");
    let duplicate = store
        .insert_project(&keyward_store::AuditContext::SYSTEM, project(org, "WEB"))
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict("project"))),
        "{duplicate:?}"
    );
    store
        .insert_project(&keyward_store::AuditContext::SYSTEM, project(other, "Web"))
        .await
        .unwrap();

    let mobile = store
        .insert_project(&keyward_store::AuditContext::SYSTEM, project(org, "Mobile"))
        .await
        .unwrap();
    let clash = store
        .update_project(
            &keyward_store::AuditContext::SYSTEM,
            org,
            mobile.id,
            ProjectChanges {
                name: Some(name("web")),
                description: None,
            },
            Timestamp::now(),
        )
        .await;
    assert!(
        matches!(clash, Err(StoreError::Conflict("project"))),
        "{clash:?}"
    );
    let later = Timestamp::now().plus_seconds(10);
    let renamed = store
        .update_project(
            &keyward_store::AuditContext::SYSTEM,
            org,
            mobile.id,
            ProjectChanges {
                name: None,
                description: Some("apps".into()),
            },
            later,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.name.as_str(), "Mobile");
    assert_eq!(renamed.description, "apps");
    assert_eq!(renamed.updated_at, later);
    let not_theirs = store
        .update_project(
            &keyward_store::AuditContext::SYSTEM,
            other,
            mobile.id,
            ProjectChanges::default(),
            later,
        )
        .await
        .unwrap();
    assert!(not_theirs.is_none());

    let listed = store
        .list_projects(org, None, Page::first(10))
        .await
        .unwrap();
    let names: Vec<_> = listed.items.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Mobile", "Web"]);
    let only = store
        .list_projects(org, Some(web.id), Page::first(10))
        .await
        .unwrap();
    assert_eq!(only.items.len(), 1);
    assert_eq!(only.items[0].id, web.id);

    assert_eq!(
        store
            .delete_project(
                &keyward_store::AuditContext::SYSTEM,
                org,
                web.id,
                Timestamp::now()
            )
            .await
            .unwrap(),
        ProjectDeletion::Deleted {
            revoked_tokens: vec![]
        }
    );
    assert!(store.get_project(org, web.id).await.unwrap().is_none());
    store
        .insert_project(&keyward_store::AuditContext::SYSTEM, project(org, "Web"))
        .await
        .unwrap();
}

pub async fn deleting_a_project_revokes_its_tokens(store: &dyn Store) {
    let (org, bootstrap) = organization(store, "Acme").await;
    let (other, _) = organization(store, "Globex").await;
    let web = store
        .insert_project(&keyward_store::AuditContext::SYSTEM, project(org, "Web"))
        .await
        .unwrap();
    let scopes = scope_names(&["instances:read"]);
    let token = store
        .insert_credential(
            &keyward_store::AuditContext::SYSTEM,
            new_credential(
                org,
                Creator::Credential(bootstrap),
                Some(web.id),
                "deploy",
                scopes.clone(),
            ),
        )
        .await
        .unwrap();
    let instance = store
        .insert_instance(
            &keyward_store::AuditContext::SYSTEM,
            instance(org, web.id, "web-1"),
        )
        .await
        .unwrap();

    let now = Timestamp::now();
    assert_eq!(
        store
            .delete_project(&keyward_store::AuditContext::SYSTEM, other, web.id, now)
            .await
            .unwrap(),
        ProjectDeletion::NotFound
    );
    assert_eq!(
        store
            .delete_project(&keyward_store::AuditContext::SYSTEM, org, web.id, now)
            .await
            .unwrap(),
        ProjectDeletion::HasInstances
    );
    assert!(
        store
            .get_credential(org, token.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );

    assert!(
        store
            .delete_instance(&keyward_store::AuditContext::SYSTEM, org, instance.id)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .delete_project(&keyward_store::AuditContext::SYSTEM, org, web.id, now)
            .await
            .unwrap(),
        ProjectDeletion::Deleted {
            revoked_tokens: vec![RevokedToken {
                id: token.id,
                digest: token.digest
            }]
        }
    );
    let revoked = store.get_credential(org, token.id).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(now));
    // The revoked token keeps its history.
    let tokens = store
        .list_credentials(
            org,
            &CredentialFilter {
                kind: CredentialKind::ProjectToken,
                project: Some(web.id),
                external_id: None,
            },
            Page::first(10),
        )
        .await
        .unwrap();
    assert_eq!(tokens.items.len(), 1);
    assert_eq!(
        store
            .delete_project(&keyward_store::AuditContext::SYSTEM, org, web.id, now)
            .await
            .unwrap(),
        ProjectDeletion::NotFound
    );
}

pub async fn instances_belong_to_live_projects_of_their_organization(store: &dyn Store) {
    let (org, _) = organization(store, "Acme").await;
    let (other, _) = organization(store, "Globex").await;
    let web = store
        .insert_project(&keyward_store::AuditContext::SYSTEM, project(org, "Web"))
        .await
        .unwrap();
    let db = store
        .insert_project(
            &keyward_store::AuditContext::SYSTEM,
            project(org, "Databases"),
        )
        .await
        .unwrap();
    let theirs = store
        .insert_project(
            &keyward_store::AuditContext::SYSTEM,
            project(other, "Theirs"),
        )
        .await
        .unwrap();

    let planted = store
        .insert_instance(
            &keyward_store::AuditContext::SYSTEM,
            instance(org, theirs.id, "x"),
        )
        .await;
    assert!(
        matches!(planted, Err(StoreError::NotFound("project"))),
        "{planted:?}"
    );

    let first = store
        .insert_instance(
            &keyward_store::AuditContext::SYSTEM,
            instance(org, web.id, "web-1"),
        )
        .await
        .unwrap();
    store
        .insert_instance(
            &keyward_store::AuditContext::SYSTEM,
            instance(org, web.id, "web-2"),
        )
        .await
        .unwrap();
    store
        .insert_instance(
            &keyward_store::AuditContext::SYSTEM,
            instance(org, db.id, "db-1"),
        )
        .await
        .unwrap();
    let duplicate = store
        .insert_instance(
            &keyward_store::AuditContext::SYSTEM,
            instance(org, web.id, "WEB-1"),
        )
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict("instance"))),
        "{duplicate:?}"
    );
    store
        .insert_instance(
            &keyward_store::AuditContext::SYSTEM,
            instance(org, db.id, "web-1"),
        )
        .await
        .unwrap();

    let all = store
        .list_instances(org, None, Page::first(10))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 4);
    let web_only = store
        .list_instances(org, Some(web.id), Page::first(1))
        .await
        .unwrap();
    assert!(web_only.has_more);
    assert_eq!(web_only.items[0].name.as_str(), "web-2");

    assert_eq!(
        store.get_instance(org, first.id).await.unwrap(),
        Some(first.clone())
    );
    assert!(store.get_instance(other, first.id).await.unwrap().is_none());
    assert!(
        !store
            .delete_instance(&keyward_store::AuditContext::SYSTEM, other, first.id)
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_instance(&keyward_store::AuditContext::SYSTEM, org, first.id)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_instance(&keyward_store::AuditContext::SYSTEM, org, first.id)
            .await
            .unwrap()
    );

    let empty = store
        .insert_project(&keyward_store::AuditContext::SYSTEM, project(org, "Empty"))
        .await
        .unwrap();
    store
        .delete_project(
            &keyward_store::AuditContext::SYSTEM,
            org,
            empty.id,
            Timestamp::now(),
        )
        .await
        .unwrap();
    let into_deleted = store
        .insert_instance(
            &keyward_store::AuditContext::SYSTEM,
            instance(org, empty.id, "late"),
        )
        .await;
    assert!(
        matches!(into_deleted, Err(StoreError::NotFound("project"))),
        "{into_deleted:?}"
    );
}

/// Token creations racing a project's deletion: each creation either fails because the
/// project is gone or lands before the deletion, which then revokes it. None outlives it.
pub async fn tokens_cannot_outlive_their_project(store: &dyn Store) {
    let (org, bootstrap) = organization(store, "Acme").await;
    let (other, _) = organization(store, "Globex").await;
    let scopes = scope_names(&["instances:read"]);
    let token = |project: ProjectId, n: u32| {
        new_credential(
            org,
            Creator::Credential(bootstrap),
            Some(project),
            &format!("token {n}"),
            scopes.clone(),
        )
    };

    // After the deletion, and in another organization, the database refuses the token.
    let gone = store
        .insert_project(&keyward_store::AuditContext::SYSTEM, project(org, "Gone"))
        .await
        .unwrap();
    store
        .delete_project(
            &keyward_store::AuditContext::SYSTEM,
            org,
            gone.id,
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_credential(&keyward_store::AuditContext::SYSTEM, token(gone.id, 0))
            .await,
        Err(StoreError::NotFound("project"))
    ));
    let theirs = store
        .insert_project(
            &keyward_store::AuditContext::SYSTEM,
            project(other, "Theirs"),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_credential(&keyward_store::AuditContext::SYSTEM, token(theirs.id, 0))
            .await,
        Err(StoreError::NotFound("project"))
    ));

    let mut created = 0;
    let mut refused = 0;
    for round in 0..25 {
        let web = store
            .insert_project(
                &keyward_store::AuditContext::SYSTEM,
                project(org, &format!("Web {round}")),
            )
            .await
            .unwrap();
        let at = Timestamp::now();
        let (a, b, c, deletion, d, e, f) = tokio::join!(
            store.insert_credential(&keyward_store::AuditContext::SYSTEM, token(web.id, 1)),
            store.insert_credential(&keyward_store::AuditContext::SYSTEM, token(web.id, 2)),
            store.insert_credential(&keyward_store::AuditContext::SYSTEM, token(web.id, 3)),
            store.delete_project(&keyward_store::AuditContext::SYSTEM, org, web.id, at),
            store.insert_credential(&keyward_store::AuditContext::SYSTEM, token(web.id, 4)),
            store.insert_credential(&keyward_store::AuditContext::SYSTEM, token(web.id, 5)),
            store.insert_credential(&keyward_store::AuditContext::SYSTEM, token(web.id, 6)),
        );
        let ProjectDeletion::Deleted { revoked_tokens } = deletion.unwrap() else {
            panic!("the project has no instances and must be deleted");
        };
        for result in [a, b, c, d, e, f] {
            match result {
                Ok(record) => {
                    created += 1;
                    assert!(
                        revoked_tokens.iter().any(|t| t.id == record.id),
                        "round {round}: a token created beside the deletion was not revoked by it"
                    );
                    let found = store
                        .find_credential_by_digest(&record.digest)
                        .await
                        .unwrap()
                        .unwrap();
                    assert!(
                        found.revoked_at.is_some(),
                        "round {round}: token still live"
                    );
                }
                Err(StoreError::NotFound("project")) => refused += 1,
                Err(other) => panic!("round {round}: {other}"),
            }
        }
    }
    assert_eq!(created + refused, 25 * 6);
}
