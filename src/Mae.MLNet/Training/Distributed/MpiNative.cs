using System.Runtime.InteropServices;

namespace Mae.MLNet.Training;

/// <summary>
/// The few MPI functions the collective uses, bound to Open MPI's <c>libmpi.so.40</c> (Debian's <c>libopenmpi3</c>,
/// Open MPI 4.x; the same soname on 5.x). Open MPI's handles are pointers: <c>MPI_COMM_WORLD</c>, <c>MPI_FLOAT</c>,
/// <c>MPI_SUM</c> are the addresses of the exported globals <c>ompi_mpi_comm_world</c>, <c>ompi_mpi_float</c>,
/// <c>ompi_mpi_op_sum</c>, and <c>MPI_IN_PLACE</c> is <c>(void*)1</c> (mpi.h). MPICH-family libraries use integer
/// handles and another soname; they are not bound here. (MPI.NET 1.4.0, the .NET binding on NuGet, imports
/// <c>msmpi.dll</c> with MS-MPI's integer handles and does not load on Linux.)
/// </summary>
static unsafe class MpiNative
{
    public const string Library = "libmpi.so.40";
    public const int ThreadSerialized = 2; // MPI_THREAD_SERIALIZED in Open MPI's mpi.h
    public static readonly nint InPlace = 1;

    static nint handle;
    public static nint CommWorld, Float, Byte, OpSum;

    /// <summary>Loads the library once and resolves the handle globals; throws naming the package when absent.</summary>
    public static void Load()
    {
        if (handle != 0) return;
        try
        {
            // RTLD_GLOBAL: Open MPI's plugins (mca_*.so) resolve libmpi's symbols from the global namespace, as
            // mpi4py loads it; .NET's own loader would use RTLD_LOCAL.
            handle = dlopen(Library, RtldNow | RtldGlobal);
            if (handle == 0) handle = NativeLibrary.Load(Library);
        }
        catch (DllNotFoundException e)
        {
            throw new MaeCollectiveException(
                $"Open MPI's {Library} could not be loaded ({e.Message}). Install Open MPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi3) and start the job with mpirun.", e);
        }
        NativeLibrary.SetDllImportResolver(typeof(MpiNative).Assembly, (name, _, _) => name == Library ? handle : 0);
        CommWorld = Export("ompi_mpi_comm_world");
        Float = Export("ompi_mpi_float");
        Byte = Export("ompi_mpi_byte");
        OpSum = Export("ompi_mpi_op_sum");
    }

    static nint Export(string name)
    {
        if (!NativeLibrary.TryGetExport(handle, name, out var address))
            throw new MaeCollectiveException($"{Library} does not export '{name}': it is not Open MPI (MPICH-family MPI libraries are not supported).");
        return address;
    }

    const int RtldNow = 2, RtldGlobal = 0x100;
    [DllImport("libc", EntryPoint = "dlopen")] static extern nint dlopen(string file, int mode);

    [DllImport(Library)] public static extern int MPI_Initialized(int* flag);
    [DllImport(Library)] public static extern int MPI_Finalized(int* flag);
    [DllImport(Library)] public static extern int MPI_Init_thread(int* argc, byte*** argv, int required, int* provided);
    [DllImport(Library)] public static extern int MPI_Finalize();
    [DllImport(Library)] public static extern int MPI_Comm_rank(nint comm, int* rank);
    [DllImport(Library)] public static extern int MPI_Comm_size(nint comm, int* size);
    [DllImport(Library)] public static extern int MPI_Allreduce(nint sendbuf, nint recvbuf, int count, nint datatype, nint op, nint comm);
    [DllImport(Library)] public static extern int MPI_Bcast(nint buffer, int count, nint datatype, int root, nint comm);
    [DllImport(Library)] public static extern int MPI_Barrier(nint comm);
    [DllImport(Library)] public static extern int MPI_Abort(nint comm, int errorcode);
}
