using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Runtime;

/// <summary>Process-wide libtorch settings: thread count, seeding, TF32, CUDA discovery. Library code changes them
/// only for the length of a run (<see cref="TorchSettingsScope"/>).</summary>
public static class TorchRuntime
{
    /// <summary>True when libtorch was built with CUDA and sees at least one device.</summary>
    public static bool CudaAvailable => cuda.is_available();

    /// <summary>Resolves the device option to a libtorch device (<see cref="MaeDevice.Auto"/>: CUDA when libtorch sees a
    /// GPU). Asking for CUDA on a build or machine without it throws <see cref="InvalidOperationException"/> that says
    /// how to get it.</summary>
    public static Device Resolve(this MaeDevice device, int cudaIndex = 0) => MaeDeviceExtensions.Resolve(device, cudaIndex);

    /// <summary><paramref name="precision"/> itself unless it is <see cref="MaePrecision.Auto"/>; then bf16 on CUDA or on
    /// a CPU with <paramref name="cpuHasNativeBf16"/> (default: this machine's, <see cref="CpuHasNativeBf16"/>), else fp32.</summary>
    public static MaePrecision Resolve(this MaePrecision precision, DeviceType device, bool? cpuHasNativeBf16 = null)
        => MaePrecisionExtensions.Resolve(precision, device, cpuHasNativeBf16);

    public static int CudaDeviceCount => CudaAvailable ? cuda.device_count() : 0;

    /// <summary>True when the CPU has native bfloat16 dot products (x86 AVX512_BF16: CPUID leaf 7, sub-leaf 1, EAX
    /// bit 5), where libtorch's bf16 matrix products run several times faster than fp32 (≈ 900 against ≈ 220
    /// GFLOP/s for 1024³ on the development machines' Zen 5). Without it bf16 is emulated and slower than fp32.</summary>
    public static bool CpuHasNativeBf16 { get; } = DetectAvx512Bf16();

    static bool DetectAvx512Bf16()
    {
        if (!System.Runtime.Intrinsics.X86.X86Base.IsSupported) return false;
        var (eax, _, _, _) = System.Runtime.Intrinsics.X86.X86Base.CpuId(7, 1);
        return (eax & (1 << 5)) != 0;
    }

    /// <summary>The OpenMP wait setting chosen when Mae.MLNet loaded (see the library's OpenMpWaitPolicy): by default
    /// "GOMP_SPINCOUNT=1000", or the user's own OMP_WAIT_POLICY / GOMP_SPINCOUNT.</summary>
    public static string OpenMpWaitSetting => OpenMpWaitPolicy.Description;

    /// <summary>The malloc setting chosen when Mae.MLNet loaded (see the library's GlibcMallocPolicy): on glibc by default
    /// "glibc malloc keeps freed memory (…)", or the user's own MALLOC_* / GLIBC_TUNABLES, or glibc's defaults with
    /// MAE_MALLOC_TUNING=0.</summary>
    public static string MallocSetting => GlibcMallocPolicy.Description;

    /// <summary>Intra-op threads libtorch uses on the CPU.</summary>
    public static int Threads
    {
        get { TorchBackend.EnsureAvailable(); return get_num_threads(); }
        set
        {
            if (value < 1) throw new ArgumentOutOfRangeException(nameof(value), value, "The thread count must be at least 1.");
            TorchBackend.EnsureAvailable();
            set_num_threads(value);
        }
    }

    /// <summary>
    /// Seeds libtorch's CPU (and, when present, CUDA) generators. With a fixed seed and thread count, CPU runs
    /// repeat bit for bit; CUDA runs repeat only as far as its kernels are deterministic.
    /// </summary>
    public static void Seed(long seed)
    {
        TorchBackend.EnsureAvailable();
        random.manual_seed(seed);
        if (CudaAvailable) cuda.manual_seed_all(seed);
    }

    /// <summary>Enables TF32 matrix math on CUDA (no effect on the CPU), as the reference gets by default on Ampere+.
    /// The trainers allow it for a CUDA run only and restore the setting afterwards (<see cref="TorchSettingsScope"/>).</summary>
    public static void AllowTf32(bool allow = true) => SetTf32(allow, allow);

    /// <summary>libtorch's TF32 flags: <c>torch.backends.cuda.matmul.allow_tf32</c> and <c>torch.backends.cudnn.allow_tf32</c>.</summary>
    public static (bool Matmul, bool Cudnn) Tf32
    {
        get
        {
            TorchBackend.EnsureAvailable();
            return (backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32);
        }
    }

    internal static void SetTf32(bool matmul, bool cudnn)
    {
        TorchBackend.EnsureAvailable();
        backends.cuda.matmul.allow_tf32 = matmul;
        backends.cudnn.allow_tf32 = cudnn;
    }
}
