"""The holder protocol of shared variables: a backend may keep a shared variable's
current value itself (the CUDA backend keeps it on the GPU). Tested with a fake holder
and a fake runner, so no backend is involved."""

import numpy as np

import symgraph as sg
import symgraph.tensor as T
from symgraph.compile import Function
from symgraph.graph import HELD


class Box:
    """A holder keeping values in a dict; counts fetches."""

    def __init__(self) -> None:
        self.values, self.fetches = {}, 0

    def fetch(self, var):
        self.fetches += 1
        return self.values[var].copy()


class Kept:
    """An update value that stores itself in the box (as a device result would)."""

    def __init__(self, box: Box, value) -> None:
        self.box, self.value = box, np.asarray(value)

    def __array__(self, dtype=None, copy=None):
        return self.value

    def assign_to(self, var) -> None:
        self.box.values[var] = self.value
        var.hold(self.box)


class DoublingRunner:
    """``runner(values)``: output ``2 * w``, update ``w := 2 * w``, both kept in the box."""

    def __init__(self, box: Box, w) -> None:
        self.holder, self.w, self.seen = box, w, []

    def __call__(self, values):
        (state,) = values
        self.seen.append(state)
        current = self.holder.values[self.w] if state is HELD else state
        return [Kept(self.holder, 2 * current), Kept(self.holder, 2 * current)]


def _doubling_function(w, box):
    f = sg.function([], w * 2, updates=[(w, w * 2)], mode="numpy")
    return Function([], [w], f.outputs, [w], f.fgraph, DoublingRunner(box, w), True,
                    f.mode, None, 0.0)


def test_held_values_stay_with_the_holder_until_get_value_fetches_them():
    w = sg.shared(np.array([1.0, 2.0]), name="w")
    box = Box()
    f = _doubling_function(w, box)
    out = f()
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [2.0, 4.0])
    assert w.holder is box and box.fetches == 0
    f()
    assert f.runner.seen[1] is HELD  # the runner's own holder has it: nothing fetched
    assert box.fetches == 0
    np.testing.assert_array_equal(w.get_value(), [4.0, 8.0])
    assert box.fetches == 1 and w.holder is None
    np.testing.assert_array_equal(w.get_value(), [4.0, 8.0])
    assert box.fetches == 1  # fetched once


def test_set_value_ends_the_hold():
    w = sg.shared(np.array([1.0]), name="w")
    box = Box()
    f = _doubling_function(w, box)
    f()
    w.set_value(np.array([10.0]))
    assert w.holder is None
    f()
    assert f.runner.seen[1] is not HELD
    np.testing.assert_array_equal(f.runner.seen[1], [10.0])


def test_another_backend_fetches_a_held_value_and_takes_over():
    w = sg.shared(np.array([1.0, 2.0]), name="w")
    box = Box()
    _doubling_function(w, box)()
    plain = sg.function([], w.sum(), updates=[(w, w + 1)], mode="numpy")
    assert plain() == 6.0  # reads the held value [2, 4]
    assert box.fetches == 1 and w.holder is None
    np.testing.assert_array_equal(w.get_value(), [3.0, 5.0])


def test_an_update_by_a_plain_backend_of_an_unread_held_variable_ends_the_hold():
    w = sg.shared(np.array([1.0]), name="w")
    box = Box()
    _doubling_function(w, box)()
    x = T.dvector("x")
    sg.function([x], [], updates=[(w, x)], mode="numpy")(np.array([7.0]))
    np.testing.assert_array_equal(w.get_value(), [7.0])
    assert box.fetches == 0
