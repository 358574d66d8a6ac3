"""Submission manifests: `submissions/NAME/submission.yaml`, who made a method and how to install it."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, HttpUrl, ValidationError, field_validator, model_validator

from phenomena_bench.core.errors import SpecError
from phenomena_bench.core.spec import StrictModel, format_validation_error, read_yaml_mapping
from phenomena_bench.registry import family_names


class Person(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    affiliation: str | None = None


class SubmissionManifest(StrictModel):
    """`submissions/NAME/submission.yaml`: who made a method, where it lives, how to install it."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$", max_length=80)
    authors: list[Person] = Field(min_length=1)
    contact: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", description="An e-mail address.")
    paper: HttpUrl | None = None
    code: HttpUrl | None = None
    entry_point: str = Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="`package.module:attr` naming the method class or object.",
    )
    families: list[str] = Field(min_length=1)
    pip: str | None = Field(default=None, description="A pip requirement that installs the method's package.")
    local_package: str | None = Field(
        default=None, description="A folder, relative to the manifest, put on sys.path to import the entry point."
    )
    description: str = ""

    @field_validator("families")
    @classmethod
    def _known_families(cls, families: list[str]) -> list[str]:
        unknown = [f for f in families if f not in family_names()]
        if unknown:
            raise ValueError(f"unknown family {', '.join(unknown)}; known: {', '.join(family_names())}")
        return families

    @model_validator(mode="after")
    def _one_way_to_install(self) -> SubmissionManifest:
        """Exactly one of `pip` and `local_package`: with both the harness could not tell which code it ran,
        with neither it has nothing to import."""
        if (self.pip is None) == (self.local_package is None):
            which = "both" if self.pip is not None else "neither"
            raise ValueError(f"set exactly one of pip and local_package (this manifest sets {which})")
        return self


def load_manifest(path: str | Path) -> SubmissionManifest:
    path = Path(path)
    if path.is_dir():
        path = path / "submission.yaml"
    data = read_yaml_mapping(path)
    try:
        return SubmissionManifest.model_validate(data)
    except ValidationError as err:
        raise SpecError(str(path), format_validation_error(err, model=SubmissionManifest)) from None
