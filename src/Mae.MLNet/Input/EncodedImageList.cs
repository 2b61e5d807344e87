using Mae.MLNet.Runtime;

namespace Mae.MLNet.Input;

/// <summary>Encoded images by index — files on disk or bytes in memory — read into a reusable buffer.</summary>
internal abstract class EncodedImageList
{
    public abstract long Count { get; }
    /// <summary>The name an error message uses: the path, or "item i" for in-memory bytes.</summary>
    public abstract string Name(long index);
    /// <summary>Reads image <paramref name="index"/> into <paramref name="buffer"/> (grown as needed); returns its length.
    /// Throws <see cref="MaeImageFileException"/> for a missing, unreadable, empty or oversized file.</summary>
    public abstract int Read(long index, ref byte[] buffer, long maxBytes);

    protected static void Ensure(ref byte[] buffer, int length)
    {
        if (buffer.Length < length) buffer = new byte[Math.Max(length, (int)Math.Min(2L * buffer.Length, Array.MaxLength))];
    }

    protected static void CheckLength(string name, long length, long maxBytes)
    {
        if (length == 0) throw new MaeImageFileException(name, "the file is empty (0 bytes); expected an encoded image (JPEG, PNG, BMP, GIF, WebP).");
        if (length > maxBytes)
            throw new MaeImageFileException(name, $"the file is {length} bytes, above the MaxFileBytes limit of {maxBytes}.");
    }
}

/// <summary>One image at a time, from an ML.NET row (a path or encoded bytes), set before each read.</summary>
internal sealed class CurrentImage : EncodedImageList
{
    public string? Path;
    public ReadOnlyMemory<byte> Bytes;
    public string RowName = "";
    public override long Count => 1;
    public override string Name(long index) => Path ?? RowName;
    public override int Read(long index, ref byte[] buffer, long maxBytes)
    {
        if (Path is not null) return FileImageList.ReadFile(Path, ref buffer, maxBytes);
        return BytesImageList.CopyBytes(RowName, Bytes.Span, ref buffer, maxBytes);
    }
}

/// <summary>Image files by path.</summary>
internal sealed class FileImageList(IReadOnlyList<string> paths) : EncodedImageList
{
    public override long Count => paths.Count;
    public override string Name(long index) => paths[(int)index];

    public override int Read(long index, ref byte[] buffer, long maxBytes) => ReadFile(paths[(int)index], ref buffer, maxBytes);

    /// <summary>Reads a whole file into <paramref name="buffer"/>; returns its length. Errors name the file. Only a
    /// regular file is read (<see cref="RegularFile"/>: a FIFO or device is refused, never waited on), and never more
    /// than the length it had when it was opened.</summary>
    public static int ReadFile(string path, ref byte[] buffer, long maxBytes)
    {
        try
        {
            // bufferSize 1: no FileStream buffer (the whole file is read into ours).
            using var fs = RegularFile.OpenRead(path, 1, FileOptions.SequentialScan);
            long length = fs.Length;
            CheckLength(path, length, maxBytes);
            Ensure(ref buffer, (int)length);
            int read = 0;
            while (read < length)
            {
                int r = fs.Read(buffer, read, (int)length - read);
                if (r == 0) throw new MaeImageFileException(path, $"the file ended after {read} of its {length} bytes while it was read.");
                read += r;
            }
            fs.CheckUnchanged();   // rewritten or grown while read: not a mix of two versions
            return read;
        }
        catch (FileNotFoundException e) when (path.Contains('\uFFFD'))
        {
            throw new MaeImageFileException(path, UndecodableName, e);
        }
        catch (FileNotFoundException e) { throw new MaeImageFileException(path, "the file does not exist.", e); }
        catch (DirectoryNotFoundException e) { throw new MaeImageFileException(path, "the file's folder does not exist.", e); }
        catch (UnauthorizedAccessException e) { throw new MaeImageFileException(path, "the file cannot be read (access denied, or it is a folder).", e); }
        catch (NotRegularFileException e) { throw new MaeImageFileException(path, $"it is {e.Kind}, not a regular file; only regular files are read.", e); }
        catch (MaeImageFileException) { throw; }
        catch (FileChangedException e) { throw new MaeImageFileException(path, "the file changed while it was read (rewritten, truncated or grown); it is not used half-old, half-new.", e); }
        catch (IOException e) { throw new MaeImageFileException(path, $"the file could not be read: {e.Message}", e); }
    }

    /// <summary>Why a listed file whose name is not UTF-8 cannot be read: .NET decodes file names as UTF-8 and puts
    /// U+FFFD (shown as �) for bytes that are not, so the name it lists no longer opens the file.</summary>
    internal const string UndecodableName =
        "its name is not valid UTF-8 (the undecodable bytes show as U+FFFD), so .NET cannot open it by the name it lists; rename the file.";
}

/// <summary>Encoded images held in memory (an ML.NET raw-bytes column).</summary>
internal sealed class BytesImageList(IReadOnlyList<byte[]> items, IReadOnlyList<string>? names) : EncodedImageList
{
    public override long Count => items.Count;
    public override string Name(long index) => names is null ? $"item {index}" : names[(int)index];

    public override int Read(long index, ref byte[] buffer, long maxBytes)
    {
        var bytes = items[(int)index];
        if (bytes is null) throw new MaeImageFileException(Name(index), "no bytes (null); expected an encoded image.");
        return CopyBytes(Name(index), bytes, ref buffer, maxBytes);
    }

    /// <summary>Copies encoded bytes into <paramref name="buffer"/>; returns their length.</summary>
    public static int CopyBytes(string name, ReadOnlySpan<byte> bytes, ref byte[] buffer, long maxBytes)
    {
        CheckLength(name, bytes.Length, maxBytes);
        Ensure(ref buffer, bytes.Length);
        bytes.CopyTo(buffer);
        return bytes.Length;
    }
}
