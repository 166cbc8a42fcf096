-- Argo CD health of an audience-operator sync (AudienceSync, SegmentSync: every kind of the
-- sync.audience-operator.io group has the same status), read from the conditions the operator
-- sets for kstatus. Install it as resource.customizations.health.sync.audience-operator.io_<Kind>
-- (docs/gitops.md). Uses only Lua's base library, as Argo CD's sandbox allows.
local hs = { status = "Progressing", message = "Waiting for the operator to pick up the sync" }

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Suspended: no runs are scheduled (spec.suspend)"
  return hs
end

if obj.status == nil or obj.status.conditions == nil then
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= generation then
  hs.message = "Waiting for the operator to apply generation " .. tostring(generation)
  return hs
end

local ready, stalled, reconciling
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    ready = c
  elseif c.type == "Stalled" then
    stalled = c
  elseif c.type == "Reconciling" then
    reconciling = c
  end
end

local function describe(c)
  local reason = c.reason or ""
  local message = c.message or ""
  if message == "" then
    return reason
  end
  return reason .. ": " .. message
end

if stalled ~= nil and stalled.status == "True" then
  -- A person must act: a missing or refused Secret, a rejected key, an invalid spec, a full
  -- target, or a plan waiting for approval.
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

if ready ~= nil and ready.status == "False" then
  -- Transient trouble (rate limit, vendor outage): the operator retries by itself. Progressing,
  -- as kstatus says InProgress: not Degraded (nobody needs to act), not Healthy (the last run
  -- failed).
  hs.message = "Retrying: " .. describe(ready)
  return hs
end

return hs
