namespace Mae.MLNet.Runtime;

/// <summary>The one way the library replaces a file: readers see either the old or the complete new content. The
/// content goes to a temporary file in the same folder (<c>.name.tmp-PID-GUID</c>, so a later run can tell its own
/// leftovers by name), is flushed to disk, then renamed over the target; on any failure the temporary is removed.</summary>
internal static class AtomicFile
{
    /// <summary>The name pattern of every temporary <see cref="Write"/> creates for files named <paramref name="prefix"/>*.</summary>
    public static string TemporaryPattern(string prefix) => "." + prefix + "*.tmp-*";

    public static void Write(string path, Action<Stream> write, int bufferSize = 1 << 16)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        string temp = Path.Combine(dir, $".{Path.GetFileName(full)}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            try { if (File.Exists(temp)) File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
