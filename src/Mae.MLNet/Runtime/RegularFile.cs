using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Mae.MLNet.Runtime;

/// <summary>
/// Opens a file for reading only when it is a regular file. A FIFO (named pipe) blocks <c>open()</c> until a writer
/// comes and then its reads until the writer writes; a character device (<c>/dev/zero</c>, <c>/dev/urandom</c>, a
/// terminal) never ends. Named like an image, a checkpoint or a model zip, either would hang a reader forever, so on
/// Linux and macOS the file is opened with <c>O_NONBLOCK</c> (which makes <c>open()</c> of a FIFO return at once and is
/// ignored for regular files), its type is read from the open descriptor (<c>statx</c> on Linux: no race between the
/// check and the read), and anything but a regular file is refused before a byte is read. Elsewhere, or where the
/// type cannot be read, a stream that cannot seek (pipes, terminals) is refused. Every reader of user files in the
/// library opens them here and reads at most the length the file had when it was opened.
/// </summary>
internal static class RegularFile
{
    /// <summary>Opens <paramref name="path"/> for reading (shared read). Throws <see cref="NotRegularFileException"/>
    /// for a FIFO, socket, device or folder, and the usual <see cref="IOException"/>s otherwise (missing, denied).</summary>
    public static ReadOnlyFile OpenRead(string path, int bufferSize = 4096, FileOptions options = FileOptions.None)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD())
        {
            var handle = OpenNonBlocking(path);
            if (handle is not null)
            {
                try
                {
                    string? kind = KindOf(handle);
                    if (kind is not null) throw new NotRegularFileException(path, kind);
                    var fs = new ReadOnlyFile(path, handle, Math.Max(bufferSize, 1));
                    if (!fs.CanSeek) { fs.Dispose(); throw new NotRegularFileException(path, "a pipe, socket or terminal"); }
                    return fs;
                }
                catch { handle.Dispose(); throw; }
            }
        }
        var stream = new ReadOnlyFile(path, bufferSize, options);
        if (!stream.CanSeek) { stream.Dispose(); throw new NotRegularFileException(path, "a pipe, device or terminal"); }
        return stream;
    }

    /// <summary>What identifies one version of an open file: its inode, size and the kernel's change and modification
    /// times (ctime is set by the kernel on every write, truncation or rename and cannot be set back by the writer).</summary>
    internal readonly record struct Stamp(ulong Inode, long Size, long ChangedNs, long ModifiedNs)
    {
        public override string ToString() => $"{Size} bytes, changed {new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddTicks(ChangedNs / 100):O}";
    }

    /// <summary>The open file's <see cref="Stamp"/> (statx on the descriptor on Linux; elsewhere length and last write time).</summary>
    internal static unsafe Stamp StampOf(FileStream fs)
    {
        if (OperatingSystem.IsLinux() && !nativeUnavailable)
        {
            const int AtEmptyPath = 0x1000;
            const uint StatxBasicStats = 0x7ff;
            byte* b = stackalloc byte[256];
            try
            {
                if (Statx((int)fs.SafeFileHandle.DangerousGetHandle(), "", AtEmptyPath, StatxBasicStats, b) == 0)
                {
                    // struct statx: stx_ino at 32, stx_size at 40, stx_ctime at 96, stx_mtime at 112 (i64 seconds, u32 nanoseconds).
                    static long Ns(byte* t) => *(long*)t * 1_000_000_000L + *(uint*)(t + 8);
                    return new Stamp(*(ulong*)(b + 32), *(long*)(b + 40), Ns(b + 96), Ns(b + 112));
                }
            }
            catch (EntryPointNotFoundException) { }
        }
        return new Stamp(0, fs.Length, 0, File.GetLastWriteTimeUtc(fs.SafeFileHandle).Ticks * 100);
    }

    /// <summary>The canonical absolute path of an existing file or folder, every symbolic link resolved (libc
    /// <c>realpath</c> on Unix); where that is unavailable, the full path with its last link resolved.</summary>
    public static string RealPath(string path)
    {
        string full = Path.GetFullPath(path);
        if (!OperatingSystem.IsWindows() && !nativeUnavailable)
        {
            try
            {
                IntPtr resolved = RealPathNative(full, IntPtr.Zero);
                if (resolved != IntPtr.Zero)
                {
                    try { return Marshal.PtrToStringUTF8(resolved) ?? full; }
                    finally { Free(resolved); }
                }
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { nativeUnavailable = true; }
        }
        try
        {
            FileSystemInfo info = Directory.Exists(full) ? new DirectoryInfo(full) : new FileInfo(full);
            return info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full;
        }
        catch (IOException) { return full; }
    }

    [DllImport("libc", EntryPoint = "realpath", SetLastError = true)]
    static extern IntPtr RealPathNative([MarshalAs(UnmanagedType.LPUTF8Str)] string path, IntPtr resolved);

    [DllImport("libc", EntryPoint = "free")]
    static extern void Free(IntPtr pointer);

    // ---- Unix ----------------------------------------------------------------------------------------------------

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    static extern int Fcntl(int fd, int cmd, int arg);

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    static extern unsafe int Statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, byte* buffer);

    const int FGetFl = 3, FSetFl = 4;
    static int NonBlockFlag => OperatingSystem.IsLinux() ? 0x800 : 0x4;
    static int CloseOnExecFlag => OperatingSystem.IsLinux() ? 0x80000 : OperatingSystem.IsMacOS() ? 0x1000000 : 0x100000;
    static int NoCttyFlag => OperatingSystem.IsLinux() ? 0x100 : 0x20000;
    static bool nativeUnavailable;

    /// <summary>The file opened O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, then put back in blocking mode; null where
    /// libc cannot be called (the caller opens it the ordinary way). Errors become the IOExceptions .NET would throw.</summary>
    static SafeFileHandle? OpenNonBlocking(string path)
    {
        if (nativeUnavailable) return null;
        int fd;
        try { fd = Open(Path.GetFullPath(path), NonBlockFlag | CloseOnExecFlag | NoCttyFlag); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            nativeUnavailable = true;
            return null;
        }
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw errno switch
            {
                2 => Directory.Exists(Path.GetDirectoryName(Path.GetFullPath(path)) ?? "/")
                    ? new FileNotFoundException($"Could not find file '{path}'.", path)
                    : new DirectoryNotFoundException($"Could not find a part of the path '{path}'."),
                20 when OperatingSystem.IsLinux() => new DirectoryNotFoundException($"Could not find a part of the path '{path}'."),
                13 or 1 => new UnauthorizedAccessException($"Access to the path '{path}' is denied."),
                _ => new IOException($"'{path}' could not be opened: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})."),
            };
        }
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        int flags = Fcntl(fd, FGetFl, 0);
        if (flags >= 0) Fcntl(fd, FSetFl, flags & ~NonBlockFlag);
        return handle;
    }

    /// <summary>What the open file is when it is not a regular file ("a FIFO (named pipe)", …); null for a regular
    /// file or when the type cannot be read (Linux statx only; elsewhere the caller's seek check decides).</summary>
    static unsafe string? KindOf(SafeFileHandle handle)
    {
        if (!OperatingSystem.IsLinux()) return null;
        const int AtEmptyPath = 0x1000;
        const uint StatxType = 1;
        byte* buffer = stackalloc byte[256];
        int rc;
        try { rc = Statx((int)handle.DangerousGetHandle(), "", AtEmptyPath, StatxType, buffer); }
        catch (EntryPointNotFoundException) { return null; }
        if (rc != 0) return null;
        int mode = *(ushort*)(buffer + 28) & 0xF000; // struct statx: stx_mode at byte 28 on every architecture
        return mode switch
        {
            0x8000 => null,
            0x1000 => "a FIFO (named pipe)",
            0x2000 => "a character device",
            0x6000 => "a block device",
            0xC000 => "a socket",
            0x4000 => "a folder",
            _ => $"a file of type 0x{mode:x4}",
        };
    }
}

/// <summary>A regular file opened for reading by <see cref="RegularFile.OpenRead"/>, which remembers the version it
/// opened (<see cref="RegularFile.Stamp"/>). A reader that has read what it needs calls <see cref="CheckUnchanged"/>:
/// a file rewritten, truncated or grown meanwhile (a copy still arriving, a training run writing in place) is refused
/// instead of trusted as a mix of two versions. A file renamed over meanwhile is refused too (the kernel sets the old
/// file's ctime when its last name goes), on the safe side: read again, the new version is whole. The kernel's timestamps have the resolution of its clock tick (a few
/// milliseconds): a second write in place within the same tick as the write before the open, keeping the size, is the
/// one change this cannot see; checksums (checkpoints, zip entries) cover the bytes themselves.</summary>
internal sealed class ReadOnlyFile : FileStream
{
    public ReadOnlyFile(string path, SafeFileHandle handle, int bufferSize) : base(handle, FileAccess.Read, bufferSize)
        => (FilePath, Opened) = (path, RegularFile.StampOf(this));

    public ReadOnlyFile(string path, int bufferSize, FileOptions options) : base(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize, options)
        => (FilePath, Opened) = (path, RegularFile.StampOf(this));

    public string FilePath { get; }
    public RegularFile.Stamp Opened { get; }

    /// <summary>Throws <see cref="FileChangedException"/> when the file is no longer the version that was opened.</summary>
    public void CheckUnchanged()
    {
        var now = RegularFile.StampOf(this);
        if (now != Opened) throw new FileChangedException(FilePath, Opened, now);
    }
}

/// <summary>A file that changed while it was read (<see cref="ReadOnlyFile.CheckUnchanged"/>). Readers turn it into their
/// own exception type, naming the file.</summary>
internal sealed class FileChangedException(string path, RegularFile.Stamp before, RegularFile.Stamp after)
    : IOException($"'{path}' changed while it was read (opened at {before}; now {after}); what was read may mix two versions, so it is not used. Read it again once its writer is done.")
{
    public string FilePath { get; } = path;
}

/// <summary>A path that names a FIFO, socket, device or folder where a regular file was expected. Readers turn it
/// into their own exception type (image, model file, checkpoint), naming the file.</summary>
internal sealed class NotRegularFileException(string path, string kind)
    : IOException($"'{path}' is {kind}, not a regular file; only regular files are read (a pipe or device could block or never end).")
{
    public string FilePath { get; } = path;
    public string Kind { get; } = kind;
}
