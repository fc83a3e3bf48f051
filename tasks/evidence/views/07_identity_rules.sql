-- The identity rules: who is in scope, and on which basis an in-scope member passes. This is
-- their one definition: the views (complete_run_members) and the daily report's query
-- (tasks/report/sql/run_members.sql) call these macros, and tasks/identity.py evaluates them
-- for one member. Inputs are a member's observation columns, the run's directory_status and
-- the identity columns of the run's policy (run_policies).

-- In scope unless the run's policy excludes the member's account type (Bitbucket's user.type:
-- user, app_user, ...). A member without a type is in scope: runs recorded before bb2sv kept
-- the type are judged as they were then.
CREATE OR REPLACE MACRO identity_in_scope(account_type, exclude_account_types) AS
    account_type IS NULL
    OR NOT coalesce(list_contains(exclude_account_types, account_type), false);

-- The policy rule that put a member out of scope; NULL for a member in scope.
CREATE OR REPLACE MACRO identity_excluded_by(account_type, exclude_account_types) AS
    CASE WHEN NOT identity_in_scope(account_type, exclude_account_types)
         THEN 'scope.exclude_account_types: ' || account_type END;

-- The first accepted second factor that holds, in precedence order; NULL when none does:
--   bitbucket_2sv  Bitbucket 2SV is enabled (has_2fa_enabled true);
--   atlassian_2sv  the directory lists the member as an active account with mfaEnabled true;
--   idp_sso        the directory lists an active MANAGED account whose email domain is one of
--                  the policy's SSO domains (enforcement itself is the policy's attestation).
-- The directory counts only when the run read it whole (directory_status 'complete').
CREATE OR REPLACE MACRO identity_factor(accepted_factors, two_step_state, directory_status,
                                        account_status, claim_status, mfa_enabled,
                                        email_domain, sso_email_domains) AS
    CASE
        WHEN list_contains(accepted_factors, 'bitbucket_2sv') AND two_step_state = 'enabled'
            THEN 'bitbucket_2sv'
        WHEN directory_status IS DISTINCT FROM 'complete'
             OR account_status IS DISTINCT FROM 'active' THEN NULL
        WHEN list_contains(accepted_factors, 'atlassian_2sv') AND coalesce(mfa_enabled, false)
            THEN 'atlassian_2sv'
        WHEN list_contains(accepted_factors, 'idp_sso') AND claim_status = 'managed'
             AND coalesce(list_contains(sso_email_domains, email_domain), false)
            THEN 'idp_sso'
    END;

-- mfa_basis: the factor that holds, else 'exception' when an approved exception covers the
-- member; NULL when neither does, and for a member out of scope (never a violation).
CREATE OR REPLACE MACRO identity_basis(in_scope, factor, excepted) AS
    CASE WHEN in_scope THEN coalesce(factor, CASE WHEN excepted THEN 'exception' END) END;

-- Whether an exception that names a nickname (and no account_id) covers the member with that
-- nickname, in a run stored by bb2sv `tool_version`: only in runs stored before 0.4. A
-- nickname is its user's to choose, so any member could take an excepted one (or two could
-- share it); since 0.4 an exception covers only the account_id it names. Runs stored before
-- are judged as their policy was then read.
CREATE OR REPLACE MACRO identity_nickname_excepts(tool_version) AS
    coalesce(
        TRY_CAST(string_split(regexp_extract(tool_version, '^[0-9]+[.][0-9]+'), '.') AS INTEGER[])
            < [0, 4],
        false
    );
