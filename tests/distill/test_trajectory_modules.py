"""The split of trajectory matching into experts, matching and the distiller."""

import ast

import hypervldd.distill.experts as experts
import hypervldd.distill.matching as matching
import hypervldd.distill.trajectory as trajectory

MOVED = {
    experts: [
        "ExpertConfig",
        "ExpertBuffer",
        "Expert",
        "train_experts",
        "build_expert_student",
        "side_parameter_names",
        "ParamLayout",
        "BUFFER_FORMAT",
        "TRAJECTORY_FORMAT",
        "SIDES",
        "_expert_seed",
    ],
    matching: ["StepLoss", "matching_gradients", "unrolled_matching_loss", "_normalisers"],
}


def test_trajectory_still_exports_the_moved_names_as_the_same_objects():
    for module, names in MOVED.items():
        for name in names:
            assert getattr(trajectory, name) is getattr(module, name), name
    for name in trajectory.__all__:
        assert hasattr(trajectory, name), name


def _relative_imports(module) -> set[str]:
    tree = ast.parse(open(module.__file__).read())
    return {
        "." * node.level + (node.module or "")
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level > 0
    }


def test_imports_flow_from_the_distiller_to_experts_and_matching():
    # One way: the lower modules never import the distiller (no cycle), and the
    # matching gradient depends on nothing in the package.
    assert _relative_imports(matching) == set()
    assert not {".trajectory", ".matching", ".engine"} & _relative_imports(experts)
    assert {".experts", ".matching"} <= _relative_imports(trajectory)
