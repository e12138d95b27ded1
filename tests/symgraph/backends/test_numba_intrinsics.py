"""The intrinsics that keep generated graph functions and kernels small (``glue``):
reshape views, loop slots, output buffers, step stacks, same-buffer tests and run-time
checks, against numpy's rules."""

import numba
import numpy as np
import pytest

from symgraph.backends.numba.glue import (
    sg_fail_if,
    sg_out,
    sg_reference_if,
    sg_reshape,
    sg_same_data,
    sg_slot,
    sg_stack_for,
)
from symgraph.backends.numba.kernels import sg_store
from symgraph.backends.numba.prelude import SGRuntimeError, SGUseReference


@numba.njit
def _reshape2(a, d0, d1):
    return sg_reshape(a, (d0, d1))


@numba.njit
def _reshape3(a, d1):
    return sg_reshape(a, (1, d1, 2))


@pytest.mark.parametrize("dims", [(3, 4), (-1, 4), (6, -1), (12, 1), (1, 12)])
def test_reshape_is_numpys_view(dims):
    a = np.arange(12, dtype=np.float32)
    got, want = _reshape2(a, *dims), a.reshape(dims)
    assert got.shape == want.shape and got.strides == want.strides
    np.testing.assert_array_equal(got, want)
    got[0, 0] = -1.0  # a view, not a copy
    assert a[0] == -1.0
    np.testing.assert_array_equal(_reshape3(a, 6), a.reshape(1, 6, 2))


@pytest.mark.parametrize("dims", [(5, 2), (-1, -1), (-2, -6), (13, 1)])
def test_reshape_to_a_wrong_size_raises(dims):
    with pytest.raises(SGRuntimeError):
        _reshape2(np.arange(12, dtype=np.float32), *dims)


def test_reshape_of_an_empty_array():
    empty = np.zeros(0, np.float32)
    assert _reshape2(empty, 0, 5).shape == (0, 5)
    with pytest.raises(SGRuntimeError):  # numpy: -1 is ambiguous with a 0 elsewhere
        _reshape2(empty, 0, -1)


@numba.njit
def _reshape_columns(a, lo, hi, d0, d1):
    return sg_reshape(a[:, lo:hi], (d0, d1))  # a column slice: typed 'A' by numba


def test_reshape_of_a_view_checks_its_order_when_it_runs():
    """An array not typed C-contiguous is reshaped when its elements are in C order and
    refused otherwise."""
    whole = np.arange(24, dtype=np.float32).reshape(4, 6)
    np.testing.assert_array_equal(_reshape_columns(whole, 0, 6, 3, 8), whole.reshape(3, 8))
    np.testing.assert_array_equal(_reshape_columns(whole[:1], 1, 5, 2, 2),
                                  whole[0, 1:5].reshape(2, 2))  # one row: in order
    np.testing.assert_array_equal(_reshape_columns(whole, 2, 2, 0, 5), np.zeros((0, 5)))
    with pytest.raises(SGRuntimeError):
        _reshape_columns(whole, 0, 4, 4, 4)  # rows of 4 out of 6: not in C order
    with pytest.raises(SGRuntimeError):
        _reshape2(whole.reshape(-1)[::2], 3, 4)  # every other element


@numba.njit
def _slot(stack, index, step, first):
    return sg_slot(stack, index, step, first)


def test_slot_is_the_stack_row_from_the_second_step_on():
    stack = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
    first = np.full((3, 2), -1.0, np.float32)
    np.testing.assert_array_equal(_slot(stack, 2, 0, first), first)
    row = _slot(stack, 2, 5, first)
    np.testing.assert_array_equal(row, stack[2])
    row[...] = 0.0  # a view of the stack
    assert not stack[2].any() and stack[1].all()


@numba.njit
def _same(a, b):
    return sg_same_data(a, b)


def test_same_data_compares_start_addresses():
    a = np.zeros((3, 2), np.float32)
    assert _same(a, a) and _same(a, a.reshape(6)) and not _same(a, a[1:]) and not _same(a, a.copy())


@numba.njit
def _checks(fail, reference):
    sg_fail_if(fail)
    sg_reference_if(reference)
    return 1


def test_checks_raise_only_when_their_condition_holds():
    assert _checks(False, False) == 1
    with pytest.raises(SGRuntimeError):
        _checks(True, False)
    with pytest.raises(SGUseReference):
        _checks(False, True)


def test_store_copies_unless_the_value_already_is_the_slot():
    stack = np.zeros((3, 2), np.float32)
    value = np.array([1.0, 2.0], np.float32)
    slot = sg_store(value, stack, 1)
    np.testing.assert_array_equal(stack[1], value)
    slot[0] = 5.0  # the slot itself is returned
    assert stack[1, 0] == 5.0
    stack[2] = 7.0
    sg_store(stack[2], stack, 2)  # the value is the slot: nothing to copy, nothing lost
    np.testing.assert_array_equal(stack[2], [7.0, 7.0])
    with pytest.raises(SGRuntimeError):
        sg_store(np.zeros(3, np.float32), stack, 0)


@numba.njit
def _out(buffer, d0, d1):
    return sg_out(buffer, (d0, d1))


@numba.njit
def _fill_outputs(buffer, d0, d1, times):
    """What a kernel does with its output buffer, ``times`` times over."""
    total = 0.0
    for k in range(times):
        out = sg_out(buffer, (d0, d1))
        out[...] = k
        total += out.sum()
    return out, total


def test_out_is_the_buffer_when_its_shape_fits_else_a_new_array():
    buffer = np.zeros((3, 4), np.float32)
    same = _out(buffer, 3, 4)
    assert same.ctypes.data == buffer.ctypes.data
    for d0, d1 in [(4, 3), (3, 5), (0, 4)]:
        new = _out(buffer, d0, d1)
        assert new.shape == (d0, d1) and new.dtype == np.float32 and new.flags.c_contiguous
        assert new.ctypes.data != buffer.ctypes.data
    with pytest.raises(SGRuntimeError):
        _out(buffer, -1, 4)


def test_out_keeps_reference_counts_right():
    """The buffer given back is a new reference and a new array is owned once: both
    outlive their callers' other references, and repeated calls free what they drop."""
    buffer = np.zeros((2, 3), np.float32)
    kept, total = _fill_outputs(buffer, 2, 3, 50)
    assert kept.ctypes.data == buffer.ctypes.data and total == 6 * sum(range(50))
    del buffer
    np.testing.assert_array_equal(kept, np.full((2, 3), 49.0))
    fresh, total = _fill_outputs(np.zeros((1, 1), np.float64), 4, 5, 50)
    assert fresh.shape == (4, 5) and fresh.dtype == np.float64 and total == 20 * sum(range(50))
    np.testing.assert_array_equal(fresh, np.full((4, 5), 49.0))


@numba.njit
def _stacks(length, value, steps):
    """A loop storing each step's ``value + step`` in a stack made at its first step."""
    stack = np.empty((0,) + value.shape, value.dtype)
    for t in range(steps):
        stack = sg_stack_for(stack, length, value, t)
        stack[t] = value + t
    return stack


@numba.njit
def _scalar_stack(length, steps):
    stack = np.empty(0, np.int64)
    for t in range(steps):
        stack = sg_stack_for(stack, length, t, t)
        stack[t] = 10 * t
    return stack


def test_stack_for_is_made_at_the_first_step_and_kept_after():
    value = np.arange(6, dtype=np.float32).reshape(2, 3)
    stack = _stacks(4, value, 4)
    assert stack.shape == (4, 2, 3) and stack.dtype == np.float32
    np.testing.assert_array_equal(stack, value + np.arange(4, dtype=np.float32)[:, None, None])
    np.testing.assert_array_equal(_scalar_stack(3, 3), [0, 10, 20])
    assert _stacks(5, value, 0).shape == (0, 2, 3)  # no step: the empty stack given
