using System.Diagnostics;

namespace Mae.Cli;

/// <summary>
/// Progress of a long command. When standard error is a terminal: a live line there (a bar, the position, the details,
/// the ETA), rewritten at most 4 times a second and cleared before each permanent line. When the output is not a
/// terminal (a log file, a pipe — also beside a live line, as in <c>mae pretrain … &gt; log</c>): a progress line on
/// the output every <c>--progress-seconds</c>, so a log never stays silent through a long epoch. The ETA is the wall
/// time so far (validation, pictures and all) over the work done in this process, times the work left.
/// </summary>
internal sealed class CliProgress
{
    readonly TextWriter output;
    readonly TextWriter? live;
    readonly bool lines;
    readonly TimeSpan every;
    readonly Stopwatch clock = Stopwatch.StartNew(), sinceLine = Stopwatch.StartNew(), sinceDrawn = Stopwatch.StartNew();
    int liveLength;

    public CliProgress(TextWriter output, double seconds, TextWriter? live)
    {
        if (!(seconds >= 0) || double.IsInfinity(seconds)) throw new CliException($"--progress-seconds must be 0 or more; got {seconds}.");
        this.output = output;
        this.live = live;
        lines = live is null || !ReferenceEquals(output, Console.Out) || Console.IsOutputRedirected;
        every = TimeSpan.FromSeconds(seconds);
    }

    /// <summary>A live line on standard error when it is a terminal and this process leads (rank 0), else none.</summary>
    public static TextWriter? Terminal(bool lead) => lead && !Console.IsErrorRedirected ? Console.Error : null;

    public TimeSpan Elapsed => clock.Elapsed;

    /// <summary>Work done before this process started (a resumed run's steps): it does not count towards the pace. Taken
    /// from the first report, which follows the first unit of work done here.</summary>
    long? doneBefore;

    /// <summary>Says how much was done before this process (for work reported in batches, where the first report follows
    /// more than one unit).</summary>
    public void Begin(long done) => doneBefore = done;

    /// <summary>Time left at the pace of this process so far, everything it did included (validation, pictures).</summary>
    public TimeSpan Eta(long done, long total)
    {
        doneBefore ??= done - 1;
        long doneHere = done - doneBefore.Value;
        return doneHere > 0 ? TimeSpan.FromSeconds(clock.Elapsed.TotalSeconds / doneHere * Math.Max(0, total - done)) : TimeSpan.Zero;
    }

    /// <summary><paramref name="done"/> of <paramref name="total"/> units (steps, images) are done; <paramref name="where"/>
    /// says where (e.g. "epoch 2/30 step 15/312"), <paramref name="details"/> the numbers of the moment (loss, lr, speed).</summary>
    public void Report(long done, long total, string where, string details)
    {
        string text = $"{where}  {details}  elapsed {Format(clock.Elapsed)}  eta {Format(Eta(done, total))}";
        if (live is not null && (sinceDrawn.ElapsedMilliseconds >= 250 || done >= total))
        {
            sinceDrawn.Restart();
            const int width = 20;
            int filled = (int)(width * Math.Clamp(done / (double)Math.Max(1, total), 0, 1));
            string line = $"[{new string('#', filled)}{new string('-', width - filled)}] {text}";
            live.Write("\r" + line.PadRight(liveLength));
            live.Flush();
            liveLength = line.Length;
        }
        if (!lines || sinceLine.Elapsed < every) return;
        sinceLine.Restart();
        output.WriteLine(text);
        output.Flush();
    }

    /// <summary>A permanent line (an epoch's summary, a file written) on the output.</summary>
    public void Line(string text)
    {
        if (live is not null && liveLength > 0)
        {
            live.Write("\r" + new string(' ', liveLength) + "\r");
            live.Flush();
            liveLength = 0;
        }
        output.WriteLine(text);
        output.Flush();
        sinceLine.Restart();
    }

    int? epochsSaid;
    readonly Stopwatch sinceRefitLine = new();

    /// <summary>Seconds between two re-fit lines: on a machine whose pace wanders a time box re-fits at many epoch ends.</summary>
    const double RefitLineSeconds = 60;

    /// <summary>Says when a time-boxed run re-fitted its epochs (the count a report carries differs from the one said
    /// last): at most one line a minute while the run goes on, so a wandering pace does not flood the output, and always
    /// with <paramref name="final"/> (the run's end: the epochs it trained).</summary>
    public void Epochs(int planned, int epoch, bool final = false)
    {
        if (epochsSaid is not int before) { epochsSaid = planned; sinceRefitLine.Start(); return; }
        if (before == planned || (!final && sinceRefitLine.Elapsed.TotalSeconds < RefitLineSeconds)) return;
        Line(final
            ? $"time box: {before} → {planned} epochs at the pace of the last epochs (the run ended at epoch {planned})"
            : $"time box: {before} → {planned} epochs at the pace of epoch {epoch} (the cosine's rest {(planned > before ? "stretched" : "squeezed")} to end at epoch {planned})");
        epochsSaid = planned;
        sinceRefitLine.Restart();
    }

    public static string Format(TimeSpan t) => t.TotalHours >= 100 ? $"{(int)t.TotalHours}h" : $"{(int)t.TotalHours:D2}:{t.Minutes:D2}:{t.Seconds:D2}";
}
