using System.Globalization;
using Mae.MLNet.Runtime;

namespace Mae.MLNet.Training;

/// <summary>
/// An exclusive lock on a run's output folder (checkpoints, metrics, weights), held from start to end of a run, so
/// that two runs never write one folder and a starting run never deletes the temporaries of a live one. The lock is
/// the file <see cref="FileName"/> in the folder, held open exclusively (on Linux and macOS .NET takes a
/// <c>flock(LOCK_EX)</c> on it; on Windows the open itself is exclusive): the operating system releases it when the
/// holder exits or is killed, so a crashed run never leaves a stale lock behind — the file stays, and the next run
/// takes it. The holder writes its process id, host and start time into it, and a refused run names them.
/// <para>The trainers take it on their <c>CheckpointDir</c> for the length of <c>Train</c>; a program that writes more
/// into the folder around training (the <c>mae</c> tool's final weights) takes it for longer with
/// <see cref="Acquire"/> — the trainer's own acquisition in the same process then nests inside it.</para>
/// <para>Not covered: file systems without working advisory locks (some network mounts), and processes that write the
/// folder without taking the lock.</para>
/// </summary>
public sealed class MaeRunFolderLock : IDisposable
{
    /// <summary>The lock file's name inside the folder.</summary>
    public const string FileName = ".mae-run.lock";

    sealed class Held(FileStream stream)
    {
        public readonly FileStream Stream = stream;
        public readonly int Thread = Environment.CurrentManagedThreadId;
        public int Count = 1;
    }

    static readonly Dictionary<string, Held> held = new(StringComparer.Ordinal);
    readonly string key;
    bool disposed;

    /// <summary>The folder locked (as given, made absolute).</summary>
    public string Folder { get; }

    MaeRunFolderLock(string folder, string key)
    {
        Folder = folder;
        this.key = key;
    }

    /// <summary>Creates <paramref name="folder"/> if needed and locks it (nested calls on the thread that holds it share
    /// the lock, which is released when the last one is disposed; another thread is refused like another process).</summary>
    /// <exception cref="MaeRunFolderException">Another run holds it (<see cref="MaeRunFolderException.Problem.InUse"/>); the message names the folder and, when
    /// it can be read, the holder's process id.</exception>
    public static MaeRunFolderLock Acquire(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        string full = Path.GetFullPath(folder);
        Directory.CreateDirectory(full);
        string key = RegularFile.RealPath(full);
        lock (held)
        {
            if (held.TryGetValue(key, out var h))
            {
                // Nesting is for one program wrapping its own trainer (same thread); another thread of this process
                // training into the folder is a second run like any other.
                if (h.Thread != Environment.CurrentManagedThreadId)
                    throw MaeRunFolderException.InUse(full, Environment.ProcessId,
                        $"Run folder '{full}' is in use by another run in this process (process {Environment.ProcessId}, another thread); " +
                        "two runs cannot write one folder. Wait for that run to end, or choose another folder.");
                h.Count++;
                return new MaeRunFolderLock(full, key);
            }
            string file = Path.Combine(full, FileName);
            FileStream stream;
            try { stream = new FileStream(file, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1); }
            catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
            {
                var (pid, holder) = ReadHolder(file);
                throw MaeRunFolderException.InUse(full, pid,
                    $"Run folder '{full}' is in use by another run ({holder ?? "its process could not be read from " + FileName}); " +
                    "two runs cannot write one folder. Wait for that run to end, stop it, or choose another folder.", e);
            }
            try
            {
                stream.SetLength(0);
                using (var w = new StreamWriter(stream, leaveOpen: true))
                    w.Write(string.Create(CultureInfo.InvariantCulture,
                        $"pid {Environment.ProcessId}\nhost {Environment.MachineName}\nstarted {DateTime.UtcNow:O}\n"));
                stream.Flush();
            }
            catch { stream.Dispose(); throw; }
            held[key] = new Held(stream);
            return new MaeRunFolderLock(full, key);
        }
    }

    /// <summary>The holder's process id and a description ("process 1234 on host h, since …"), read without waiting
    /// for the lock (the lock is advisory; reading the file is not blocked by it on Unix).</summary>
    static (int? Pid, string? Description) ReadHolder(string file)
    {
        try
        {
            using var fs = RegularFile.OpenRead(file, 1);
            var bytes = new byte[Math.Min(fs.Length, 4096)];
            fs.ReadExactly(bytes);
            var fields = System.Text.Encoding.UTF8.GetString(bytes).Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => l.Split(' ', 2)).Where(p => p.Length == 2).GroupBy(p => p[0]).ToDictionary(g => g.Key, g => g.First()[1]);
            if (!fields.TryGetValue("pid", out var p) || !int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out int pid)) return (null, null);
            string host = fields.TryGetValue("host", out var h) ? $" on {h}" : "";
            string since = fields.TryGetValue("started", out var s) ? $", since {s}" : "";
            return (pid, $"process {pid}{host}{since}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return (null, null); }
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        lock (held)
        {
            if (!held.TryGetValue(key, out var h) || --h.Count > 0) return;
            held.Remove(key);
            h.Stream.Dispose();
        }
    }
}
