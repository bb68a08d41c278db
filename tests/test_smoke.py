from conftest import Repo


def test_example_registry_validates_at_head(example_repo: Repo, cli) -> None:
    code, out, err = cli("-C", str(example_repo.root), "validate")
    assert code == 0, out + err
    assert err.startswith("valid: 3 models, 6 versions, 6 files verified at ")
