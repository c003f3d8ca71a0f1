//! Organization roles of people: `owner` > `admin` > `member`.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    pub fn from_storage(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Self::Owner),
            "admin" => Some(Self::Admin),
            "member" => Some(Self::Member),
            _ => None,
        }
    }
}

impl Role {
    /// Whether a person with this role sees and manages the organization's members.
    pub fn manages_members(self) -> bool {
        self >= Role::Admin
    }

    /// Whether a person with this role may move a member from `current` (`None`: not a member
    /// yet) to `new` (`None`: removed). Owners may do anything (the store still keeps one
    /// owner); admins may manage admins and members but never touch an owner or make one.
    pub fn may_assign(self, current: Option<Role>, new: Option<Role>) -> bool {
        match self {
            Role::Owner => true,
            Role::Admin => current != Some(Role::Owner) && new != Some(Role::Owner),
            Role::Member => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_round_trip() {
        assert!(Role::Owner > Role::Admin && Role::Admin > Role::Member);
        for role in [Role::Owner, Role::Admin, Role::Member] {
            assert_eq!(Role::from_storage(role.as_str()), Some(role));
        }
        assert_eq!(Role::from_storage("root"), None);
    }

    #[test]
    fn only_owners_touch_owners() {
        use Role::{Admin, Member, Owner};
        assert!(Owner.may_assign(Some(Owner), Some(Member)));
        assert!(Owner.may_assign(None, Some(Owner)));
        assert!(Admin.may_assign(None, Some(Admin)));
        assert!(Admin.may_assign(Some(Member), None));
        assert!(!Admin.may_assign(Some(Owner), Some(Member)));
        assert!(!Admin.may_assign(Some(Member), Some(Owner)));
        assert!(!Admin.may_assign(Some(Owner), None));
        assert!(!Member.may_assign(Some(Member), None));
        assert!(Owner.manages_members() && Admin.manages_members() && !Member.manages_members());
    }
}
