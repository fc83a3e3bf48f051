"""Read the Atlassian organization directory (Admin API v2 users), whole or with a reason.

Entry point: `extract.extract_directory(config.directory_settings_from_env())`. It is the
second source of who has a second factor (Atlassian-account 2SV and managed accounts for
SSO), read once per collection with the Bitbucket client's own pieces: `BitbucketClient`
(pacing, retries, raw pages) with the directory's `api` (`messages.DIRECTORY_API`) and the
`NextLinkPaginator` following the `links.next` cursors. The modules: `config` (settings and
the Admin API key), `messages` (the page envelope and what to fix), `models`
(`DirectoryExtract`), `extract`.
"""
