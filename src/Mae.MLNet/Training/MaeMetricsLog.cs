using Mae.MLNet.Runtime;
using System.Text;
using System.Text.Json;

namespace Mae.MLNet.Training;

/// <summary>Appends one JSON object per line (epoch, step, global_step, loss, lr, images_per_s, eta_s, elapsed_s,
/// time) to a file, flushing after every line so a killed run keeps what it logged.</summary>
internal sealed class MaeMetricsLog : IDisposable
{
    readonly FileStream _fs;

    public MaeMetricsLog(string path, long keepUpToGlobalStep)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        if (File.Exists(full)) TruncateAfter(full, keepUpToGlobalStep);
        _fs = new FileStream(full, FileMode.Append, FileAccess.Write, FileShare.Read);
    }

    /// <summary>On resume, drops lines of steps after the checkpoint (a killed run may have logged them), so the
    /// file describes one consistent run. A fresh run (keep = 0) starts an empty file.</summary>
    static void TruncateAfter(string path, long keep)
    {
        var kept = new List<string>();
        if (keep > 0)
            foreach (var line in File.ReadLines(path))
            {
                if (string.IsNullOrWhiteSpace(line)) continue;
                try
                {
                    using var doc = JsonDocument.Parse(line);
                    if (doc.RootElement.TryGetProperty("global_step", out var g) && g.GetInt64() <= keep) kept.Add(line);
                }
                catch (JsonException) { /* a torn last line of a killed run */ }
            }
        AtomicFile.Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, new UTF8Encoding(false), leaveOpen: true);
            foreach (var line in kept) writer.WriteLine(line);
        });
    }

    public void Write(MaeStepReport p)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteNumber("epoch", p.Epoch);
            w.WriteNumber("step", p.Step);
            w.WriteNumber("global_step", p.GlobalStep);
            w.WriteNumber("loss", p.Loss);
            w.WriteNumber("lr", p.LearningRate);
            w.WriteNumber("images_per_s", Math.Round(p.ImagesPerSecond, 3));
            w.WriteNumber("eta_s", Math.Round(p.Eta.TotalSeconds, 3));
            w.WriteNumber("elapsed_s", Math.Round(p.Elapsed.TotalSeconds, 3));
            w.WriteString("time", DateTime.UtcNow.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
            w.WriteEndObject();
        }
        ms.WriteByte((byte)'\n');
        _fs.Write(ms.GetBuffer(), 0, (int)ms.Length);
        _fs.Flush();
    }

    public void Dispose() => _fs.Dispose();
}
