"""The pyspark side of the option tables (:mod:`sparkasr.params`): :func:`declare_params` gives a
stage class a ``Param`` per option of its table, with the table's doc, type converter and
default, a ``setX``/``getX`` for each (unless the class defines its own), and ``__init__`` /
``setParams`` whose keyword signatures are the table's names (pyspark.ml's ``keyword_only``
convention). Every value set through them is checked against the table (type, allowed values),
then the stage's ``_validate`` hook checks the options together (by building its engine options),
so a bad value fails at once, on the driver, naming the param."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Union

from pyspark.ml.param import Param, Params, TypeConverters

from ..options import BOOL, FLOAT, INT, LIST_FLOAT, LIST_INT, LIST_STRING, STRING, Option

__all__ = ["declare_params", "HasReaderCols", "ReaderCols"]


def _to_float_list(value) -> List[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [float(value)]
    return TypeConverters.toListFloat(value)


_CONVERTERS: Dict[str, Callable[[Any], Any]] = {
    STRING: TypeConverters.toString,
    INT: TypeConverters.toInt,
    FLOAT: TypeConverters.toFloat,
    BOOL: TypeConverters.toBoolean,
    LIST_STRING: TypeConverters.toListString,
    LIST_FLOAT: _to_float_list,
    LIST_INT: TypeConverters.toListInt,
}


def _cap(name: str) -> str:
    return name[0].upper() + name[1:]


def _setter(name: str):
    def setter(self, value):
        return self.setParams(**{name: value})

    setter.__name__ = "set" + _cap(name)
    setter.__doc__ = f"Sets the value of :py:attr:`{name}`."
    return setter


def _getter(name: str):
    def getter(self):
        return self.getOrDefault(name)

    getter.__name__ = "get" + _cap(name)
    getter.__doc__ = f"Gets the value of :py:attr:`{name}` or its default value."
    return getter


def _keyword_signature(names: List[str]) -> inspect.Signature:
    self_ = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return inspect.Signature(
        [self_] + [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in names]
    )


def declare_params(table):
    """Class decorator: the Params, accessors and keyword constructor of ``table``'s options."""

    def decorate(cls):
        names = table.names
        options: Dict[str, Option] = {o.name: o for o in table.options}
        for o in table.options:
            setattr(cls, o.name, Param(Params._dummy(), o.name, o.doc, typeConverter=_CONVERTERS[o.type]))
            for accessor, make in (("set", _setter), ("get", _getter)):
                if not hasattr(cls, accessor + _cap(o.name)):
                    setattr(cls, accessor + _cap(o.name), make(o.name))

        def check_kwargs(self, method: str, kwargs: Dict[str, Any]) -> Dict[str, Any]:
            unknown = [k for k in kwargs if k not in options]
            if unknown:
                raise TypeError(
                    f"{cls.__name__}.{method}() got an unexpected keyword argument {unknown[0]!r}; "
                    f"params: {', '.join(names)}"
                )
            checked = {}
            for k, v in kwargs.items():
                if v is None:
                    continue
                value = getattr(cls, k).typeConverter(v)
                try:
                    checked[k] = options[k].check(value)
                except ValueError as exc:
                    raise ValueError(f"{cls.__name__}: {k} {exc}") from None
            return checked

        def __init__(self, **kwargs):
            super(cls, self).__init__()
            self._setDefault(**table.defaults())
            self.setParams(**kwargs)

        def setParams(self, **kwargs):
            self._input_kwargs = kwargs  # pyspark.ml's keyword_only convention
            self._set(**check_kwargs(self, "setParams", kwargs))
            self._validate()
            return self

        __init__.__signature__ = _keyword_signature(names)
        setParams.__signature__ = _keyword_signature(names)
        __init__.__doc__ = setParams.__doc__ = f"Keyword params of {cls.__name__}: " + ", ".join(names) + "."
        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        setParams.__qualname__ = f"{cls.__qualname__}.setParams"

        def _option_values(self) -> Dict[str, Any]:
            """Every option's current value (set or default) by name."""
            return {n: self.getOrDefault(n) for n in names if self.isDefined(n)}

        cls.__init__ = __init__
        cls.setParams = setParams
        cls._option_values = _option_values
        cls._option_table = table
        if not hasattr(cls, "_validate"):
            cls._validate = lambda self: None
        return cls

    return decorate


class HasInputCols(Params):
    """Spark NLP's ``setInputCols("a", "b")`` / ``setInputCols(["a"])``."""

    def setInputCols(self, *value: Union[str, List[str]]):
        if len(value) == 1 and isinstance(value[0], (list, tuple)):
            value = tuple(value[0])
        return self.setParams(inputCols=list(value))


class HasReaderCols(Params):
    """``pathCol``, ``offsetCol``, ``durationCol`` and ``errorCol``: what
    :func:`~sparkasr.spark.reader.read_audio` says about each row besides its samples (which file it
    is, where a segment starts in its file and how long it is, why a file could not be read), for
    ``AudioAssembler`` and the speech annotators alike. Unset (''), each is read_audio's column
    when the DataFrame has it; set, the column must exist."""

    def _reader_cols(self, dataset, path_input: bool) -> ReaderCols:
        """The reader columns of ``dataset``, each None when unset and absent; the duration column
        only for a path input column (``path_input``), the only input it slices, though a column
        named in ``durationCol`` is checked either way."""
        from pyspark.sql.types import NumericType, StringType

        duration = _optional_col(dataset, self.getDurationCol(), "duration_s", (NumericType,), "durationCol")
        return ReaderCols(
            _optional_col(dataset, self.getPathCol(), "path", (StringType,), "pathCol"),
            _optional_col(dataset, self.getOffsetCol(), "offset_s", (NumericType,), "offsetCol"),
            _optional_col(dataset, self.getErrorCol(), "error", (StringType,), "errorCol"),
            duration if path_input else None,
        )


class ReaderCols(NamedTuple):
    """Which columns of a DataFrame hold read_audio's path, offset, error and duration (None: none)."""

    path: Optional[str]
    offset: Optional[str]
    error: Optional[str]
    duration: Optional[str]


def _optional_col(dataset, value: str, default: str, accepted: tuple, what: str) -> Optional[str]:
    """The column a ``...Col`` param names, checked; when unset, ``default`` if ``dataset`` has it
    with an ``accepted`` type, else None."""
    if value:
        if value not in dataset.columns:
            raise ValueError(f"{what} column '{value}' not found; columns are {dataset.columns}")
        if not isinstance(dataset.schema[value].dataType, accepted):
            raise TypeError(f"{what} column '{value}' has type {dataset.schema[value].dataType.simpleString()}")
        return value
    if default in dataset.columns and isinstance(dataset.schema[default].dataType, accepted):
        return default
    return None
