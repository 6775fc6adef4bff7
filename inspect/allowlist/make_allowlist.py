"""Writes inspect/src/allowlist.txt: the exact globals a model pickle may import.

Run with a Python that has scikit-learn (the version the list is made from is recorded in the
file's header):
    python inspect/allowlist/make_allowlist.py
Every public class that scikit-learn defines (estimators, trees, loss and link objects,
neighbour trees, kernels...) is listed by its real module path, skipping test helpers and
vendored code; the rest — Python, numpy, scipy.sparse, PyTorch tensors, XGBoost, LightGBM —
comes from the hand-written list below. Functions are listed only where a pickle needs them
to rebuild data (numpy's and PyTorch's reconstructors), never by package.
"""

import importlib
import inspect
import pkgutil
from pathlib import Path

import sklearn

OUT = Path(__file__).resolve().parent.parent / "src" / "allowlist.txt"

HAND = """
collections:OrderedDict
collections:defaultdict
collections:deque
collections:Counter
copyreg:_reconstructor
copy_reg:_reconstructor
copyreg:__newobj__
copyreg:__newobj_ex__
_codecs:encode
datetime:datetime
datetime:date
datetime:time
datetime:timedelta
datetime:timezone
decimal:Decimal
fractions:Fraction
uuid:UUID
numpy:ndarray
numpy:dtype
numpy:bool_
numpy:float16
numpy:float32
numpy:float64
numpy:int8
numpy:int16
numpy:int32
numpy:int64
numpy:uint8
numpy:uint16
numpy:uint32
numpy:uint64
numpy:complex64
numpy:complex128
numpy:str_
numpy:bytes_
numpy:object_
numpy:generic
numpy.core.multiarray:_reconstruct
numpy.core.multiarray:scalar
numpy._core.multiarray:_reconstruct
numpy._core.multiarray:scalar
numpy.core.numeric:_frombuffer
numpy._core.numeric:_frombuffer
numpy.ma.core:_mareconstruct
numpy.ma.core:MaskedArray
numpy.random._pickle:__randomstate_ctor
numpy.random._pickle:__bit_generator_ctor
numpy.random._pickle:__generator_ctor
numpy.random.mtrand:RandomState
numpy.random._mt19937:MT19937
numpy.random._pcg64:PCG64
numpy.random._pcg64:PCG64DXSM
numpy.random._philox:Philox
numpy.random._sfc64:SFC64
numpy.random._generator:Generator
numpy.random.bit_generator:SeedSequence
numpy.dtypes:BoolDType
numpy.dtypes:Int8DType
numpy.dtypes:Int16DType
numpy.dtypes:Int32DType
numpy.dtypes:Int64DType
numpy.dtypes:UInt8DType
numpy.dtypes:UInt16DType
numpy.dtypes:UInt32DType
numpy.dtypes:UInt64DType
numpy.dtypes:Float16DType
numpy.dtypes:Float32DType
numpy.dtypes:Float64DType
numpy.dtypes:Complex64DType
numpy.dtypes:Complex128DType
numpy.dtypes:ObjectDType
numpy.dtypes:StrDType
numpy.dtypes:BytesDType
joblib.numpy_pickle:NumpyArrayWrapper
sklearn.externals.joblib.numpy_pickle:NumpyArrayWrapper
scipy.sparse._csr:csr_matrix
scipy.sparse._csc:csc_matrix
scipy.sparse._coo:coo_matrix
scipy.sparse._lil:lil_matrix
scipy.sparse._dok:dok_matrix
scipy.sparse._bsr:bsr_matrix
scipy.sparse._dia:dia_matrix
scipy.sparse._csr:csr_array
scipy.sparse._csc:csc_array
scipy.sparse._coo:coo_array
scipy.sparse.csr:csr_matrix
scipy.sparse.csc:csc_matrix
scipy.sparse.coo:coo_matrix
torch._utils:_rebuild_tensor
torch._utils:_rebuild_tensor_v2
torch._utils:_rebuild_tensor_v3
torch._utils:_rebuild_parameter
torch._utils:_rebuild_parameter_with_state
torch._utils:_rebuild_qtensor
torch._utils:_rebuild_sparse_tensor
torch._utils:_rebuild_device_tensor_from_numpy
torch._utils:_rebuild_meta_tensor_no_storage
torch._tensor:_rebuild_from_type_v2
torch:Size
torch:device
torch:Tensor
torch:float16
torch:float32
torch:float64
torch:bfloat16
torch:int8
torch:int16
torch:int32
torch:int64
torch:uint8
torch:bool
torch:complex64
torch:complex128
torch:float8_e4m3fn
torch:float8_e5m2
torch:strided
torch:sparse_coo
torch:per_tensor_affine
torch:per_channel_affine
torch.nn.parameter:Parameter
torch.storage:UntypedStorage
torch.storage:TypedStorage
torch:UntypedStorage
torch:FloatStorage
torch:DoubleStorage
torch:HalfStorage
torch:BFloat16Storage
torch:LongStorage
torch:IntStorage
torch:ShortStorage
torch:CharStorage
torch:ByteStorage
torch:BoolStorage
torch:ComplexFloatStorage
torch:ComplexDoubleStorage
torch:QInt8Storage
torch:QUInt8Storage
torch:QInt32Storage
torch:Float8_e4m3fnStorage
torch:Float8_e5m2Storage
xgboost.sklearn:XGBClassifier
xgboost.sklearn:XGBRegressor
xgboost.sklearn:XGBRanker
xgboost.sklearn:XGBRFClassifier
xgboost.sklearn:XGBRFRegressor
xgboost.core:Booster
lightgbm.sklearn:LGBMClassifier
lightgbm.sklearn:LGBMRegressor
lightgbm.sklearn:LGBMRanker
lightgbm.basic:Booster
"""

SKIP = ("tests", "_testing", "externals", "_build_utils", "conftest", "_mocking", "_show_versions")


def sklearn_classes():
    found = set()
    for info in pkgutil.walk_packages(sklearn.__path__, "sklearn."):
        if any(part in SKIP for part in info.name.split(".")):
            continue
        try:
            module = importlib.import_module(info.name)
        except Exception:
            continue
        for name, obj in vars(module).items():
            if not inspect.isclass(obj) or name.startswith("_"):
                continue
            if getattr(obj, "__module__", None) != info.name:
                continue
            if issubclass(obj, (BaseException, Warning)):
                continue
            found.add(f"{info.name}:{name}")
    return found


lines = sorted(set(l for l in HAND.split() if l) | sklearn_classes())
OUT.write_text(
    f"# Made by inspect/allowlist/make_allowlist.py from scikit-learn {sklearn.__version__}; "
    "one `module:name` per line.\n" + "\n".join(lines) + "\n"
)
print(f"{OUT}: {len(lines)} globals")
