"""The package stays readable: no file in compressor/ over 400 lines, no function over 80 (issue 26)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "compressor"
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 80


def _sources():
    return sorted(PACKAGE.rglob("*.py"))


def test_no_file_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in _sources() if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert not long


def test_no_function_over_80_lines():
    long = {}
    for p in _sources():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - min([node.lineno] + [d.lineno for d in node.decorator_list]) + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{p.relative_to(PACKAGE)}:{node.name}"] = lines
    assert not long
