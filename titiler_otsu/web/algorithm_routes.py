"""`/algorithms` endpoints: TiTiler's and ours, each with its parameter JSON schema.

May import: `core`, `security`, `io`, `algorithms`, `web`, `errors`, `settings` (never `export`).
"""

from typing import Annotated, Any, Literal

from attrs import define
from fastapi import Path, Request
from titiler.core.algorithm.base import AlgorithmMetadata, BaseAlgorithm
from titiler.core.factory import AlgorithmFactory

from titiler_otsu.algorithms import SegmentationAlgorithm


@define(kw_only=True)
class OtsuAlgorithmFactory(AlgorithmFactory):
    """Algorithm listing whose entries carry title, description and parameter schemas."""

    def _get_algo_metadata(self, algorithm: type[BaseAlgorithm]) -> AlgorithmMetadata:
        if not issubclass(algorithm, SegmentationAlgorithm):
            return super()._get_algo_metadata(algorithm)
        schema = algorithm.model_json_schema()
        return AlgorithmMetadata(
            title=algorithm.title,
            description=algorithm.description,
            inputs={"nbands": algorithm.input_nbands},
            outputs={
                "nbands": algorithm.output_nbands,
                "dtype": algorithm.output_dtype,
                "min": algorithm.output_min,
                "max": algorithm.output_max,
            },
            parameters=schema.get("properties", {}),
        )

    def register_routes(self) -> None:
        """Register `/algorithms` (with schemas) and `/algorithms/{algorithmId}`."""

        @self.router.get("/algorithms", summary="Available algorithms with their parameter schemas.")
        def available_algorithms(request: Request) -> dict[str, Any]:
            entries = []
            for algo_id in self.supported_algorithm.list():
                meta = self._get_algo_metadata(self.supported_algorithm.get(algo_id))
                href = self.url_for(request, "algorithm_metadata", algorithmId=algo_id)
                entries.append(
                    {
                        "id": algo_id,
                        "title": meta.title,
                        "description": meta.description,
                        "parameters": meta.parameters,
                        "links": [{"href": href, "rel": "item", "type": "application/json"}],
                    }
                )
            return {"algorithms": entries}

        @self.router.get(
            "/algorithms/{algorithmId}",
            response_model=AlgorithmMetadata,
            summary="Metadata of one algorithm.",
        )
        def algorithm_metadata(
            algorithmId: Annotated[
                Literal[tuple(self.supported_algorithm.list())],  # type: ignore[valid-type]
                Path(description="Algorithm name"),
            ],
        ) -> AlgorithmMetadata:
            return self._get_algo_metadata(self.supported_algorithm.get(algorithmId))
