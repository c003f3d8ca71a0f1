//! How far a credential reaches: the whole organization, or one project. The one place that
//! decides whether a project is within a caller's reach, for the API, the dashboard and
//! forward authentication alike.

use crate::ProjectId;

/// The projects a caller may touch: every project of its organization (an API key, a
/// person), or only one (a project token's). Anything out of reach is as absent as another
/// organization's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    Organization,
    Project(ProjectId),
}

impl Reach {
    /// The reach of a credential of `project` (`None`: an organization's).
    pub fn of(project: Option<ProjectId>) -> Self {
        project.map_or(Self::Organization, Self::Project)
    }

    /// Whether `project` is within reach.
    pub fn allows(self, project: ProjectId) -> bool {
        match self {
            Self::Organization => true,
            Self::Project(own) => own == project,
        }
    }

    /// The one project it is confined to, if it is.
    pub fn project(self) -> Option<ProjectId> {
        match self {
            Self::Organization => None,
            Self::Project(own) => Some(own),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_reach_allows_its_project_only() {
        let (own, other) = (ProjectId::generate(), ProjectId::generate());
        assert!(Reach::Organization.allows(own) && Reach::Organization.allows(other));
        let confined = Reach::of(Some(own));
        assert!(confined.allows(own));
        assert!(!confined.allows(other));
        assert_eq!(confined.project(), Some(own));
        assert_eq!(Reach::of(None), Reach::Organization);
        assert_eq!(Reach::Organization.project(), None);
    }
}
