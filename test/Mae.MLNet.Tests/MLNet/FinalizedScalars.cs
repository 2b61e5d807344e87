using System.Diagnostics.Tracing;
using TorchSharp;

namespace Mae.MLNet.Tests.MLNet;

/// <summary>
/// Counts TorchSharp <see cref="Scalar"/> objects that reach their finalizer, from the runtime's own FinalizeObject
/// events (Microsoft-Windows-DotNETRuntime, GC keyword, verbose). A Scalar that is disposed — held by the code that
/// passes it to libtorch — is never finalized; one that reaches the finalizer was a temporary nothing held, and could
/// have been freed while a native call still used it. So "no Scalar finalized" is the deterministic form of "no
/// temporary Scalar can be freed mid-call", which a stress test can only catch by luck.
/// </summary>
internal sealed class FinalizedScalars : EventListener
{
    const EventKeywords GcKeyword = (EventKeywords)0x1;
    static readonly ulong ScalarType = (ulong)typeof(Scalar).TypeHandle.Value;
    static readonly ulong MarkerType = (ulong)typeof(Marker).TypeHandle.Value;
    long count, any;
    readonly SemaphoreSlim markersSeen = new(0);
    volatile bool enabled;

    /// <summary>An object finalized after everything <see cref="Settle"/> waits for: the finalizer thread writes its
    /// FinalizeObject event after theirs, into the same event stream, so seeing it means theirs have arrived.</summary>
    sealed class Marker
    {
        ~Marker() { }
    }

    public long Count => Interlocked.Read(ref count);
    /// <summary>Finalized objects of any type seen (shows the events arrive at all).</summary>
    public long Any => Interlocked.Read(ref any);

    protected override void OnEventSourceCreated(EventSource source)
    {
        if (source.Name == "Microsoft-Windows-DotNETRuntime")
        {
            EnableEvents(source, EventLevel.Verbose, GcKeyword);
            enabled = true;
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs e)
    {
        if (e.EventName != "FinalizeObject" || e.Payload is null || e.Payload.Count == 0) return;
        Interlocked.Increment(ref any);
        ulong type = e.Payload[0] switch { IntPtr p => (ulong)(long)p, UIntPtr u => (ulong)u, var v => Convert.ToUInt64(v) };
        if (type == ScalarType) Interlocked.Increment(ref count);
        else if (type == MarkerType) markersSeen.Release();
    }

    public bool Enabled => enabled;

    /// <summary>Collects and runs finalizers, then waits until the events of that have been delivered: EventPipe hands
    /// them to listeners from a session thread, in batches, so the wait is for a marker object's own FinalizeObject
    /// event, written by the finalizer thread after every finalizer run here (a state, not a time).</summary>
    public void Settle()
    {
        for (int i = 0; i < 3; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        DropMarker();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        // The bound only turns a listener that never receives the marker into a failure instead of a hang.
        if (!markersSeen.Wait(TimeSpan.FromMinutes(2)))
            throw new InvalidOperationException("the runtime's FinalizeObject event of the marker never reached the listener");
    }

    /// <summary>The control, so a check can fail: 20 <c>tensor + tensor</c> (TorchSharp passes a temporary alpha = 1 that
    /// nothing holds, the pattern the library avoids); returns the Scalars that reached the finalizer meanwhile (≥ 20).</summary>
    public long FinalizedByControl() => FinalizedDuring(() =>
    {
        using var a = torch.ones(3);
        using var b = torch.ones(3);
        for (int i = 0; i < 20; i++) (a + b).Dispose();
    });

    /// <summary>The Scalars that reached the finalizer while <paramref name="run"/> ran (settled before and after).</summary>
    public long FinalizedDuring(Action run)
    {
        Settle();
        long before = Count;
        run();
        Settle();
        return Count - before;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    static void DropMarker() => _ = new Marker();

    public override void Dispose()
    {
        base.Dispose();
        markersSeen.Dispose();
    }
}
