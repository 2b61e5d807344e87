using System.Diagnostics;

namespace Mae.MLNet.Training;

/// <summary>
/// Bounds the time a rank may wait inside a collective. A blocking MPI or NCCL call cannot be cancelled, so when
/// one runs longer than <see cref="Timeout"/> (another rank died, hangs, or failed before reaching the same call)
/// a background thread writes which rank waited in which operation for how long to stderr and calls
/// <c>onTimeout</c> (<c>MPI_Abort</c>: mpirun then ends every rank), instead of the job hanging silently.
/// </summary>
sealed class CollectiveWatchdog
{
    readonly Action<string> onTimeout;
    readonly string who;
    readonly object gate = new();
    string? operation;
    long started;
    Thread? thread;

    public CollectiveWatchdog(string who, TimeSpan timeout, Action<string> onTimeout)
    {
        this.who = who;
        Timeout = timeout;
        this.onTimeout = onTimeout;
    }

    /// <summary>The longest wait inside one collective.</summary>
    public TimeSpan Timeout { get; set; }

    /// <summary>Marks a collective as running until the result is disposed.</summary>
    public Guard Enter(string op)
    {
        lock (gate)
        {
            operation = op;
            started = Stopwatch.GetTimestamp();
            if (thread is null)
            {
                thread = new Thread(Watch) { IsBackground = true, Name = "Mae collective watchdog" };
                thread.Start();
            }
        }
        return new Guard(this);
    }

    void Leave()
    {
        lock (gate) operation = null;
    }

    void Watch()
    {
        while (true)
        {
            Thread.Sleep(TimeSpan.FromMilliseconds(Math.Clamp(Timeout.TotalMilliseconds / 20, 50, 1000)));
            string? op;
            TimeSpan waited;
            lock (gate)
            {
                op = operation;
                waited = Stopwatch.GetElapsedTime(started);
            }
            if (op is null || waited <= Timeout) continue;
            string message = $"Mae.MLNet: {who} waited {waited.TotalSeconds:0.0} s in {op}, longer than the collective timeout of " +
                $"{Timeout.TotalSeconds:0.#} s (MAE_COLLECTIVE_TIMEOUT_S): another rank died, hangs or failed before this call. Aborting the job.";
            Console.Error.WriteLine(message);
            Console.Error.Flush();
            onTimeout(message);
            return;
        }
    }

    public readonly struct Guard(CollectiveWatchdog owner) : IDisposable
    {
        public void Dispose() => owner.Leave();
    }
}
